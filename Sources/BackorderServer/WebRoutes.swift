import HTTPTypes
import Hummingbird

/// The web dashboard (docs/WEB.md): one page and its script and style sheet, embedded in
/// the binary (`PackageResources`, made by SwiftPM from `Web/`), so a copied binary serves
/// it with nothing beside it. The page holds no data: it reads the tenant routes with the
/// reader's token, so these routes need none.
enum WebRoutes {
    /// One embedded file and its validator.
    struct Asset: Sendable {
        let bytes: [UInt8]
        let contentType: String
        /// A strong tag of the bytes: a reload revalidates and gets `304` until the binary changes.
        let etag: String

        init(_ bytes: [UInt8], _ contentType: String) {
            self.bytes = bytes
            self.contentType = contentType
            etag = EntityTag.of(bytes)
        }
    }

    static let page = Asset(PackageResources.index_html, "text/html; charset=utf-8")
    static let script = Asset(PackageResources.app_js, "text/javascript; charset=utf-8")
    static let styles = Asset(PackageResources.app_css, "text/css; charset=utf-8")

    /// Only this origin's script, styles and requests; no frames, no plug-ins, no inline code.
    static let contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    static let referrerPolicy = HTTPField.Name("Referrer-Policy")!

    static func add(to router: Router<ServerContext>) {
        router.get("/") { request, _ in serve(page, request) }
        router.get("t/:tenant") { request, _ in serve(page, request) }
        router.get("assets/app.js") { request, _ in serve(script, request) }
        router.get("assets/app.css") { request, _ in serve(styles, request) }
    }

    static func serve(_ asset: Asset, _ request: Request) -> Response {
        let headers: HTTPFields = [
            .cacheControl: "no-cache",
            .contentSecurityPolicy: contentSecurityPolicy,
            .xContentTypeOptions: "nosniff",
            referrerPolicy: "no-referrer",
        ]
        return EntityTag.conditional(request, asset.etag, headers: headers) {
            Response(status: .ok, headers: [.contentType: asset.contentType], body: ResponseBody(byteBuffer: ByteBuffer(bytes: asset.bytes)))
        }
    }
}
