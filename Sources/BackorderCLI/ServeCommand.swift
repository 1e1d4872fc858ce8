import ArgumentParser
import BackorderServer
import EventLog
import Foundation
import Logging

/// `backorder serve`: the store over HTTP (docs/SERVER.md).
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the store over HTTP: appends, reads, queries, live updates, metrics (docs/SERVER.md).",
        discussion: """
            Serves the embedded log in --data, or with --cluster a JetStream stream (the views then kept in \
            --data). Listens on 127.0.0.1:8080 by default. Requests carry a bearer token from --tokens (make one with \
            `backorder token create`); --insecure-no-auth serves without tokens, on a loopback address only. \
            SIGTERM or SIGINT: stop accepting, finish the requests in flight, commit the views, close the store, exit 0.
            """)

    @OptionGroup var data: DataOptions
    @Option(help: "Address and port to listen on.") var listen = "127.0.0.1:8080"
    @Option(help: "The tokens file (backorder token create).") var tokens: String?
    @Flag(help: "Serve without tokens (refused unless --listen is a loopback address).") var insecureNoAuth = false
    @Option(help: "fsync (default), interval[:MS] or none (the embedded log only).") var durability: String?
    @Option(help: "Partitions of a new store (or a new cluster stream).") var partitions = 8
    @Option(help: "Largest request body in bytes.") var maxBodyBytes = 16 << 20
    @Option(help: "Requests per second per token (sustained; twice as many in a burst).") var rateLimit = 5_000.0

    func run() async throws {
        guard let durability = Durability(parsing: durability ?? "fsync") else {
            throw ValidationError("unknown durability \"\(self.durability ?? "")\": use fsync, interval[:MS] or none")
        }
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]), (0...65_535).contains(port) else {
            throw ValidationError("--listen \(listen): give HOST:PORT, such as 127.0.0.1:8080")
        }
        guard rateLimit > 0 else { throw ValidationError("--rate-limit must be positive") }
        guard maxBodyBytes > 0 else { throw ValidationError("--max-body-bytes must be positive") }
        // On a cluster the directory keeps the views and the id cache (as for `query`).
        var options = ServeOptions(directory: data.viewsDirectory)
        options.cluster = data.clusterOptions(partitions: partitions)
        if options.cluster != nil && self.durability != nil {
            throw ValidationError("--durability sets the embedded log's syncing; on a cluster an append is acknowledged as the stream's replication allows")
        }
        options.host = String(listen[..<colon]).trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
        options.port = port
        options.tokensPath = tokens
        options.insecureNoAuth = insecureNoAuth
        options.durability = durability
        options.partitions = partitions
        options.maxBodyBytes = maxBodyBytes
        options.requestsPerSecond = rateLimit
        options.burst = rateLimit * 2
        var logger = Logger(label: "backorder.serve")
        logger.logLevel = .notice
        let (host, directory) = (options.host, options.cluster.map { "cluster \($0.urls) (views in \(data.viewsDirectory))" } ?? data.directory)
        do {
            try await BackorderServer.run(options, logger: logger) { port in
                printError("serving \(directory) on http://\(host):\(port)" + (insecureNoAuth ? " without tokens (--insecure-no-auth)" : ""))
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        printError("stopped: the store is closed")
    }
}

/// `backorder token create|list|revoke`: the server's bearer tokens.
struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make, list and revoke the server's bearer tokens (the file keeps only their SHA-256).",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Make a token; prints it as the last line (the only time it is shown).")
        @Option(help: "The tokens file.") var tokens: String
        @Option(help: "The tenant it reaches, or * for every tenant.") var tenant: String
        @Option(help: "Comma-separated roles: append, read, audit, consume, admin.") var roles: String
        @Option(help: "A note for people: who or what it is for.") var label: String?

        func run() throws {
            var parsed: [Role] = []
            for name in roles.split(separator: ",") {
                guard let role = Role(rawValue: String(name).trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("unknown role \"\(name)\": use \(Role.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                parsed.append(role)
            }
            do {
                var file = try TokenFile.load(tokens)
                let token = try file.create(tenant: tenant, roles: parsed, label: label)
                let entry = file.entries.last!
                printError("token \(entry.id) for tenant \(entry.tenant), roles \(entry.roles.map(\.rawValue).joined(separator: ",")), added to \(tokens)")
                print(token)
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "The tokens of a file (ids, tenants, roles; never the tokens).")
        @Option(help: "The tokens file.") var tokens: String

        func run() throws {
            do {
                let file = try TokenFile.load(tokens)
                if file.entries.isEmpty { print("no tokens in \(tokens)") }
                for entry in file.entries {
                    print("\(entry.id)  tenant \(entry.tenant)  roles \(entry.roles.map(\.rawValue).joined(separator: ","))  created \(entry.created)" + (entry.label.map { "  \($0)" } ?? ""))
                }
            } catch {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a token by its id (a running server reads the file again within a second).")
        @Option(help: "The tokens file.") var tokens: String
        @Argument(help: "The token's id (token list).") var id: String

        func run() throws {
            do {
                var file = try TokenFile.load(tokens)
                guard try file.revoke(id: id) else {
                    printError("error: no token \(id) in \(tokens) (ids: \(file.entries.map(\.id).joined(separator: ", ")))")
                    throw ExitCode(1)
                }
                print("revoked \(id); \(file.entries.count) tokens left in \(tokens)")
            } catch let error as TokenError {
                printError("error: \(error)")
                throw ExitCode(1)
            }
        }
    }
}
