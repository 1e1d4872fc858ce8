import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Headless Chromium driven through chromedriver (W3C WebDriver over HTTP, loopback only):
/// what the web dashboard's tests need. chromedriver is started on a free port and stopped
/// by PID; a machine without Debian's `chromium` and `chromium-driver` fails the test with
/// that message, it does not skip it.
final class Browser {
    let driver: SpawnedProcess
    let port: Int
    let session: String
    /// Chromium's profile directory: also how its processes are found to be stopped.
    let profile: String

    static let chromium = "/usr/bin/chromium"
    static let chromedriver = "/usr/bin/chromedriver"

    static func start(width: Int, height: Int, output: String) throws -> Browser {
        for path in [chromium, chromedriver] where !FileManager.default.isExecutableFile(atPath: path) {
            throw CLIError(message: "\(path) is missing: the web dashboard's browser tests need Debian's chromium and chromium-driver (apt-get install chromium chromium-driver; .ci/run installs them)")
        }
        _ = FileManager.default.createFile(atPath: output, contents: nil)
        // Dates on the page are shown in the viewer's zone: make it a known one.
        let driver = try SpawnedProcess(chromedriver, ["--port=0"], environment: ProcessInfo.processInfo.environment.merging(["TZ": "UTC"]) { $1 },
                                        standardOutput: output, standardError: output)
        // The port chromedriver chose, from the line it prints once listening.
        var port = 0
        let deadline = Date().addingTimeInterval(30)
        while port == 0 {
            let text = (try? String(contentsOfFile: output, encoding: .utf8)) ?? ""
            if let range = text.range(of: "started successfully on port ") {
                port = Int(text[range.upperBound...].prefix { $0.isNumber }) ?? 0
            }
            guard port == 0 else { break }
            guard driver.isRunning, Date() < deadline else {
                if driver.isRunning { kill(driver.processIdentifier, SIGKILL) }
                throw CLIError(message: "chromedriver did not start: \(text)")
            }
            usleep(20_000)
        }
        let capabilities: [String: Any] = ["capabilities": ["alwaysMatch": [
            "browserName": "chrome",
            "goog:chromeOptions": [
                "binary": chromium,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars",
                         "--lang=en-US", "--window-size=\(width),\(height)", "--no-first-run", "--disable-extensions",
                         "--user-data-dir=\(output).profile"],
            ],
        ]]]
        do {
            let value = try Self.call(port: port, "POST", "/session", capabilities)
            guard let session = (value as? [String: Any])?["sessionId"] as? String else { throw CLIError(message: "no session from chromedriver: \(String(describing: value))") }
            let browser = Browser(driver: driver, port: port, session: session, profile: output + ".profile")
            _ = try browser.call("POST", "timeouts", ["script": 120_000, "pageLoad": 120_000])
            return browser
        } catch {
            kill(driver.processIdentifier, SIGKILL)
            driver.waitUntilExit()
            killProcesses(using: output + ".profile")
            throw error
        }
    }

    private init(driver: SpawnedProcess, port: Int, session: String, profile: String) {
        self.driver = driver
        self.port = port
        self.session = session
        self.profile = profile
    }

    /// Ends the session, stops chromedriver, and any Chromium process still running with
    /// this session's profile (by PID, found in /proc), and removes the profile.
    func quit() {
        _ = try? call("DELETE", "")
        if driver.isRunning { kill(driver.processIdentifier, SIGKILL) }
        driver.waitUntilExit()
        Self.killProcesses(using: profile)
        try? FileManager.default.removeItem(atPath: profile)
    }

    /// SIGKILLs every process whose command line names `profile`.
    private static func killProcesses(using profile: String) {
        let needle = "--user-data-dir=\(profile)"
        for pid in ProcessTable.processes(withAnArgument: { $0 == needle }) { kill(pid, SIGKILL) }
    }

    /// A command of this session; its `value`.
    @discardableResult
    func call(_ method: String, _ command: String, _ body: Any? = nil) throws -> Any? {
        try Self.call(port: port, method, "/session/\(session)" + (command.isEmpty ? "" : "/" + command), body)
    }

    private static func call(port: Int, _ method: String, _ path: String, _ body: Any?) throws -> Any? {
        // Longer than any wait below: a wait that runs out answers before the socket does.
        let connection = try ServeProcessTests.Connection(port: port, timeoutSeconds: 180)
        let text = try body.map { String(decoding: try JSONSerialization.data(withJSONObject: $0), as: UTF8.self) } ?? ""
        try connection.send(method, path, body: text, headers: body == nil ? [:] : ["Content-Type": "application/json"])
        let (status, answer) = try connection.response()
        let json = try JSONSerialization.jsonObject(with: Data(answer.utf8), options: [.fragmentsAllowed]) as? [String: Any]
        guard status == 200 else {
            let error = json?["value"] as? [String: Any]
            throw CLIError(message: "WebDriver \(method) \(path): \(status) \(error?["error"] ?? "") \(error?["message"] ?? answer)")
        }
        return json?["value"] ?? nil
    }

    /// Loads `url` (returns once the page's load event has fired).
    func open(_ url: String) throws { try call("POST", "url", ["url": url]) }

    /// Runs `script` (a function body; `arguments` are `args`) in the page; its result.
    @discardableResult
    func run(_ script: String, _ args: [Any] = []) throws -> Any? {
        try call("POST", "execute/sync", ["script": script, "args": args])
    }

    /// Waits until `condition` (an expression over the page) is truthy, and returns its
    /// value: checked at once and again at every change of the page's DOM (a
    /// MutationObserver) and every resize, so the test moves on at the event, not after a
    /// sleep; fails after `seconds`.
    @discardableResult
    func wait(for condition: String, seconds: Int = 60, _ what: String) throws -> Any? {
        let script = """
            const done = arguments[arguments.length - 1];
            const check = () => { try { return (\(condition)); } catch (e) { return null; } };
            const first = check();
            if (first) { done(first); return; }
            const timer = setTimeout(() => { observer.disconnect(); done({ timedOut: true }); }, \(seconds * 1000));
            const observer = new MutationObserver(() => {
              const value = check();
              if (value) { observer.disconnect(); clearTimeout(timer); done(value); }
            });
            observer.observe(document, { subtree: true, childList: true, attributes: true, characterData: true });
            window.addEventListener('resize', () => { const value = check(); if (value) { observer.disconnect(); clearTimeout(timer); done(value); } });
            """
        let value = try call("POST", "execute/async", ["script": script, "args": []])
        if let object = value as? [String: Any], object["timedOut"] as? Bool == true {
            let page = (try? run("return document.querySelector('main')?.innerText ?? document.body.innerText")) as? String ?? ""
            throw CLIError(message: "the page did not show \(what) within \(seconds) s; it shows: \(page.prefix(600))")
        }
        return value
    }

    /// Clicks the first element matching `css`.
    func click(_ css: String) throws {
        let element = try find(css)
        try call("POST", "element/\(element)/click", [String: Any]())
    }

    /// Types `text` into the first element matching `css` (after clearing it).
    func type(_ css: String, _ text: String) throws {
        let element = try find(css)
        try call("POST", "element/\(element)/clear", [String: Any]())
        try call("POST", "element/\(element)/value", ["text": text])
    }

    /// Presses keys (WebDriver key codes, e.g. "\u{E007}" for Enter) at the focused element.
    func press(_ keys: String) throws {
        let actions: [[String: Any]] = keys.unicodeScalars.flatMap { key -> [[String: Any]] in
            [["type": "keyDown", "value": String(key)], ["type": "keyUp", "value": String(key)]]
        }
        try call("POST", "actions", ["actions": [["type": "key", "id": "keyboard", "actions": actions]]])
    }

    private func find(_ css: String) throws -> String {
        let value = try call("POST", "element", ["using": "css selector", "value": css]) as? [String: Any]
        guard let id = value?.first(where: { $0.key.hasPrefix("element-") })?.value as? String else {
            throw CLIError(message: "no element \(css) on the page")
        }
        return id
    }

    /// Resizes the window (the page lays out again at once).
    func resize(width: Int, height: Int) throws { try call("POST", "window/rect", ["width": width, "height": height]) }

    /// A PNG of the viewport.
    func screenshot() throws -> Data {
        guard let text = try call("GET", "screenshot") as? String, let png = Data(base64Encoded: text) else {
            throw CLIError(message: "no screenshot from chromedriver")
        }
        return png
    }
}
