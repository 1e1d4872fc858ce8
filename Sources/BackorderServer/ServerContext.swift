import Hummingbird

/// The per-request context: Hummingbird's storage and the caller's token, once the
/// `AccessMiddleware` has checked it.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The caller's token; nil when the server runs without tokens (`--insecure-no-auth`).
    public var token: TokenEntry?
    /// Whether the server checks tokens at all.
    public var authenticated = false
    /// Set by the access middleware from the server's options.
    public var bodyLimit = 16 << 20

    public init(source: Source) {
        coreContext = .init(source: source)
    }

    public var maxUploadSize: Int { bodyLimit }

    /// Checks that the caller may do `role` on `tenant`'s data. A tenant the token does not
    /// reach is answered 404, as if it did not exist, so that names do not leak; a missing
    /// role on a tenant it does reach is 403.
    public func authorize(_ tenant: String, _ role: Role) throws {
        guard authenticated else { return }
        guard let token else { throw Problem(.unauthorized, "this route needs a bearer token (Authorization: Bearer bo_…)") }
        guard token.reaches(tenant) else { throw Problem(.notFound, "no tenant \(tenant)") }
        guard token.allows(role) else {
            throw Problem(.forbidden, "token \(token.id) may not \(role.rawValue) (its roles: \(token.roles.map(\.rawValue).joined(separator: ", ")))")
        }
    }
}
