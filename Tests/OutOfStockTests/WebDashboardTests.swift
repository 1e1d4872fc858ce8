import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The web dashboard in a real browser (headless Chromium): every figure on the page against
/// `backorder query dashboard --json`, a producer's appends showing without a reload, the
/// records list's pages and search against `query records`, a record's history against
/// `audit history`, a wrong token's message, phone width, and the live stream resuming after
/// a server restart. With `BACKORDER_SCREENSHOTS=DIR` it keeps the desktop and phone
/// screenshots there (docs/ holds the ones of the last change to the page).
@Suite(.serialized) struct WebDashboardTests {
    typealias Server = ServeProcessTests.Server
    typealias Connection = ServeProcessTests.Connection

    @Test func dashboardRecordsAndHistoryInABrowserMatchTheCLIAndFollowAppends() throws {
        let dir = freshDirectory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let data = dir + "/data", input = dir + "/events.ndjson", tokens = dir + "/tokens"
        // Business times end on a fixed day long past: no request crosses an ageing bound
        // while the test compares.
        let (generated, lines, generateError) = try runBackorder(["generate", "--events", "8000", "--seed", "3", "--end", "2026-01-01"])
        #expect(generated == 0, "\(generateError)")
        try lines.write(toFile: input, atomically: true, encoding: .utf8)
        let (appended, _, appendError) = try runBackorder(["append", input, "--data", data])
        #expect(appended == 0, "\(appendError)")
        let (created, tokenOut, tokenError) = try runBackorder(["token", "create", "--tokens", tokens, "--tenant", "default", "--roles", "read,audit,append"])
        #expect(created == 0, "\(tokenError)")
        let token = try #require(tokenOut.split(separator: "\n").last.map(String.init))
        let reference = try cliJSON(["query", "dashboard", "--data", data, "--json"])

        var server = try Server.start(data: data, output: dir + "/serve", access: ["--tokens", tokens])
        defer { server.stop() }
        let browser = try Browser.start(width: 1280, height: 1700, output: dir + "/chromedriver.log")
        defer { browser.quit() }
        let page = "http://127.0.0.1:\(server.port)/t/default"
        try browser.open(page)

        // A token is asked for; a wrong one is refused with the server's reason.
        try browser.wait(for: "document.querySelector('#token')", "the token form")
        try browser.type("#token", "bo_not_a_token")
        try browser.click("form.token button[type=submit]")
        let refusal = try browser.wait(for: "document.querySelector('.token .banner')?.textContent", "the refusal of a wrong token") as? String
        #expect(refusal?.contains("not one of this server's") == true, "\(refusal ?? "")")
        try browser.type("#token", token)
        try browser.click("form.token button[type=submit]")
        try browser.wait(for: "document.querySelectorAll('[data-figure]').length > 10", "the dashboard")

        // Every figure on the page is the CLI's, and shown formatted for the locale (en-US).
        try expectFigures(browser, equal: reference)
        let (requestsDrawn, completionsDrawn) = try chartSums(browser)
        #expect(requestsDrawn == sum(reference["requestsPerDay"]) && completionsDrawn == sum(reference["completionsPerDay"]))
        #expect(completionsDrawn > 0)
        try keepScreenshot(browser, "dashboard-desktop.png")

        // The skip link moves focus to the content and leaves the view as it is.
        try browser.run("document.querySelector('a.skip').focus()")
        try browser.press("\u{E007}")
        #expect(try browser.run("return document.activeElement.id === 'main' && document.querySelectorAll('[data-figure]').length") as? Int == 15)

        // A producer appends three requests: the page shows them without a reload, from
        // the live stream (its count of new events).
        try browser.wait(for: "document.querySelector('#live').dataset.state === 'live'", "the live stream")
        try browser.run("window.notReloaded = true")
        let pendingBefore = try figure(browser, "byStatus.pending")
        let producer = try Connection(port: server.port)
        try producer.send("POST", "/v1/tenants/default/events", body: try newRequests(input, count: 3, from: 1), headers: ["Authorization": "Bearer \(token)"])
        let (status, body) = try producer.response()
        #expect(status == 201, "\(body)")
        let acknowledged = ContinuousClock.now
        try browser.wait(for: "document.querySelector('[data-figure=\"byStatus.pending\"]')?.dataset.value === '\(pendingBefore + 3)'", "the three new pending requests")
        let shownAfter = ContinuousClock.now - acknowledged
        // The goal is 1 s, measured by bench/web-figures.py on a quiet machine; in the suite
        // this test shares two cores with every other suite (it took 111 s there, against 10
        // alone), so the bound here only catches an update that never came by the stream.
        #expect(shownAfter < .seconds(30), "an append took \(shownAfter) to show")
        try browser.wait(for: "document.querySelector('#live-count').dataset.count === '3'", "three events counted from the stream")
        #expect(try browser.run("return window.notReloaded === true") as? Bool == true)
        #expect(try figure(browser, "pendingUnder7Days") == 3)
        #expect(try browser.run("return document.querySelector('#live').dataset.state") as? String == "live")

        // The records list, page by page, as `query records` gives it.
        try browser.click("a[data-nav=records]")
        let firstPage = try cliJSON(["query", "records", "--data", data, "--json"])
        let total = try #require(firstPage["total"] as? Int)
        try browser.wait(for: "document.querySelector('#page-summary')?.textContent === '1–50 of \(total.formatted(.number.locale(Locale(identifier: "en_US"))))'", "the first page of records")
        #expect(try rowIDs(browser, "records") == ids(firstPage["records"]))
        let cursor = try #require(firstPage["nextCursor"] as? String)
        let secondPage = try cliJSON(["query", "records", "--data", data, "--json", "--cursor", cursor])
        try browser.click("#next-page")
        try browser.wait(for: "document.querySelector('#page-summary')?.textContent.startsWith('51–100 of')", "the second page of records")
        #expect(try rowIDs(browser, "records") == ids(secondPage["records"]))
        try browser.click("#previous-page")
        try browser.wait(for: "document.querySelector('#page-summary')?.textContent.startsWith('1–50 of')", "the first page again")
        #expect(try rowIDs(browser, "records") == ids(firstPage["records"]))
        #expect(try browser.run("return document.querySelector('#previous-page').disabled") as? Bool == true)
        // A status filter, as `query records --status`.
        let pending = try cliJSON(["query", "records", "--data", data, "--json", "--status", "pending"])
        try browser.click("#f-status option[value=pending]")
        try browser.click("form.filters button[type=submit]")
        try browser.wait(for: "document.querySelector('#page-summary')?.dataset.total === '\(try #require(pending["total"] as? Int))' && location.hash.includes('status=pending')", "the pending records")
        #expect(try rowIDs(browser, "records") == ids(pending["records"]))
        try browser.click("#f-status option[value='']")
        // Request dates, as the viewer's days with both ends included (the browser runs in
        // UTC here): `query records --from 2025-06-01 --to 2025-07-01`.
        let june = try cliJSON(["query", "records", "--data", data, "--json", "--from", "2025-06-01", "--to", "2025-07-01"])
        try browser.run("document.querySelector('#f-from').value = '2025-06-01'; document.querySelector('#f-to').value = '2025-06-30'")
        try browser.click("form.filters button[type=submit]")
        try browser.wait(for: "document.querySelector('#page-summary')?.dataset.total === '\(try #require(june["total"] as? Int))' && location.hash.includes('to=2025-06-30')", "June's records")
        #expect(try rowIDs(browser, "records") == ids(june["records"]))
        try browser.run("document.querySelector('#f-from').value = ''; document.querySelector('#f-to').value = ''")
        // A search, as `query records --search`.
        let found = try cliJSON(["query", "records", "--data", data, "--json", "--search", "fleece"])
        try browser.type("#f-search", "fleece")
        try browser.click("form.filters button[type=submit]")
        let foundTotal = try #require(found["total"] as? Int)
        try browser.wait(for: "document.querySelector('#page-summary')?.dataset.total === '\(foundTotal)' && location.hash.includes('search=fleece')", "the search's records")
        #expect(try rowIDs(browser, "records") == ids(found["records"]))

        // A record's page: its history as `audit history` tells it (who, when, each change).
        let recordID = try #require(ids(found["records"]).first)
        try browser.click("table[data-list=records] tbody tr[data-id='\(recordID)'] a")
        try browser.wait(for: "document.querySelectorAll('table[data-list=history] tbody tr').length > 0", "the record's history")
        let history = try #require(try JSONSerialization.jsonObject(with: Data(try cliOutput(["audit", "history", recordID, "--data", data, "--json"]).utf8)) as? [[String: Any]])
        let shownHistory = try #require(try browser.run("""
            return [...document.querySelectorAll('table[data-list=history] tbody tr')].map(r => [r.cells[1].querySelector('time')?.getAttribute('datetime'),
              r.cells[2].textContent, r.cells[3].textContent, [...r.cells[4].querySelectorAll('li')].map(li => li.textContent)])
            """) as? [[Any]])
        #expect(shownHistory.count == history.count)
        for (row, entry) in zip(shownHistory, history) {
            #expect(row[0] as? String == entry["at"] as? String && row[1] as? String == entry["actor"] as? String && row[2] as? String == entry["type"] as? String)
            // Each change as "field: before → after" (or "field: after" for a first value).
            let changes = (entry["changes"] as? [[String: Any]] ?? []).map { c in
                "\(c["field"] ?? ""): " + ((c["before"] as? String).map { "\($0) → " } ?? "") + "\(c["after"] as? String ?? "—")"
            }
            #expect(row[3] as? [String] == changes, "\(row) against \(entry)")
        }

        // A delivery to a record on screen shows in its history without a reload.
        try browser.run("location.hash = '#/records/R-900001'")
        try browser.wait(for: "document.querySelectorAll('table[data-list=history] tbody tr').length === 1", "the new record's history")
        let delivery = #"{"id":"00000000-0000-4000-9000-100000000001","type":"DeliveryRecorded","actor":"web-test","data":{"recordId":"R-900001","quantity":2}}"#
        try producer.send("POST", "/v1/tenants/default/events", body: delivery + "\n", headers: ["Authorization": "Bearer \(token)"])
        #expect(try producer.response().status == 201)
        try browser.wait(for: "document.querySelectorAll('table[data-list=history] tbody tr').length === 2", "the delivery in the record's history")
        #expect(try browser.run("return document.querySelector('table[data-list=history] tbody tr:last-child').textContent.includes('DeliveryRecorded')") as? Bool == true)

        // Back to the dashboard with the keyboard: focus the link, press Enter.
        try browser.run("document.querySelector('a[data-nav=dashboard]').focus()")
        try browser.press("\u{E007}")
        try browser.wait(for: "document.querySelectorAll('[data-figure]').length > 10", "the dashboard again")

        // At phone width the page does not scroll sideways (wide tables scroll in their panel).
        try browser.resize(width: 390, height: 844)
        try browser.wait(for: "window.innerWidth <= 400", "the narrow window")
        #expect(try browser.run("return document.documentElement.scrollWidth <= window.innerWidth") as? Bool == true)
        try keepScreenshot(browser, "dashboard-phone.png")
        try browser.run("location.hash = '#/records'")
        try browser.wait(for: "document.querySelector('#page-summary')", "the records at phone width")
        #expect(try browser.run("return document.documentElement.scrollWidth <= window.innerWidth") as? Bool == true)
        try browser.resize(width: 1280, height: 1700)
        try browser.run("location.hash = '#/'")
        try browser.wait(for: "document.querySelectorAll('[data-figure]').length > 10", "the dashboard after the records")

        // The server stops; while it is down, `backorder append` adds two requests; it starts
        // again on the same port. The page reconnects with its Last-Event-ID and gets exactly
        // those two events (its count), then what is appended after the restart.
        let port = server.port
        let counted = try #require(Int(try browser.run("return document.querySelector('#live-count').dataset.count") as? String ?? ""))
        let pendingBeforeRestart = try figure(browser, "byStatus.pending")
        server.process.terminate()
        server.process.waitUntilExit()
        #expect(server.process.terminationStatus == 0)
        try browser.wait(for: "document.querySelector('#live').dataset.state !== 'live'", "the lost connection")
        try newRequests(input, count: 2, from: 5).write(toFile: dir + "/while-down.ndjson", atomically: true, encoding: .utf8)
        let (appendedWhileDown, _, downError) = try runBackorder(["append", dir + "/while-down.ndjson", "--data", data])
        #expect(appendedWhileDown == 0, "\(downError)")
        server = try Server.start(data: data, output: dir + "/serve-2", listen: "127.0.0.1:\(port)", access: ["--tokens", tokens])
        try browser.wait(for: "Number(document.querySelector('#live-count').dataset.count) >= \(counted + 2)", "the two events appended while the server was down")
        try browser.wait(for: "document.querySelector('[data-figure=\"byStatus.pending\"]')?.dataset.value === '\(pendingBeforeRestart + 2)'", "the two requests appended while the server was down")
        #expect(try browser.run("return document.querySelector('#live-count').dataset.count") as? String == String(counted + 2), "each event counted once")
        let pendingNow = try figure(browser, "byStatus.pending")
        let again = try Connection(port: server.port)
        try again.send("POST", "/v1/tenants/default/events", body: try newRequests(input, count: 1, from: 7), headers: ["Authorization": "Bearer \(token)"])
        #expect(try again.response().status == 201)
        try browser.wait(for: "document.querySelector('[data-figure=\"byStatus.pending\"]')?.dataset.value === '\(pendingNow + 1)'", "the request appended after the restart")
        #expect(try browser.run("return window.notReloaded === true") as? Bool == true)

        // Another token, without the audit role: a record's events are shown without their
        // changes, and the page says why.
        let (createdReader, readerOut, _) = try runBackorder(["token", "create", "--tokens", tokens, "--tenant", "default", "--roles", "read"])
        #expect(createdReader == 0)
        let reader = try #require(readerOut.split(separator: "\n").last.map(String.init))
        // A restart, so that the page's next request surely finds the new token (a running
        // server reads its token file again within a second; RouteTests checks that).
        server.process.terminate()
        server.process.waitUntilExit()
        server = try Server.start(data: data, output: dir + "/serve-3", listen: "127.0.0.1:\(port)", access: ["--tokens", tokens])
        try browser.click("#forget-token")
        try browser.wait(for: "document.querySelector('#token')", "the token form after forgetting the token")
        try browser.type("#token", reader)
        try browser.click("form.token button[type=submit]")
        try browser.wait(for: "document.querySelectorAll('[data-figure]').length > 10", "the dashboard with the read-only token")
        try browser.run("location.hash = '#/records/R-900001'")
        let notice = try browser.wait(for: "document.querySelectorAll('table[data-list=history] tbody tr').length === 2 && document.querySelector('#view').textContent.includes('lacks the audit role')", "the history without changes")
        #expect(notice as? Bool == true)
    }

    // MARK: helpers

    /// Each `[data-figure]` of the page against the CLI's dashboard: the raw value and the
    /// text shown (en-US grouping).
    private func expectFigures(_ browser: Browser, equal reference: [String: Any]) throws {
        let shown = try #require(try browser.run("return [...document.querySelectorAll('[data-figure]')].map(e => [e.dataset.figure, e.dataset.value, e.textContent])") as? [[String]])
        #expect(shown.count == 15, "the 15 figures of the dashboard")
        func value(_ path: String) -> Any? {
            let parts = path.split(separator: ".", maxSplits: 1).map(String.init)
            if parts.count == 2 { return (reference[parts[0]] as? [String: Any])?[parts[1]] ?? 0 }
            return reference[path]
        }
        for row in shown {
            let (path, raw, text) = (row[0], row[1], row[2])
            if path == "averageProcessingHours" {
                let hours = try #require(reference[path] as? Double)
                #expect(Double(raw) == hours && (text.hasSuffix(" days") || text.hasSuffix(" hours")), "\(path): \(raw) \(text)")
                continue
            }
            let expected: Int
            if path == "pendingUnder7Days" {
                expected = (value("byStatus.pending") as? Int ?? 0) - (reference["dueSoon"] as? Int ?? 0) - (reference["overdue"] as? Int ?? 0)
            } else {
                expected = try #require(value(path) as? Int, "\(path) is not in the CLI's dashboard")
            }
            #expect(Int(raw) == expected, "\(path): the page shows \(raw), the CLI \(expected)")
            #expect(text == expected.formatted(.number.locale(Locale(identifier: "en_US"))), "\(path) shown as \(text)")
        }
        for list in ["topCustomers", "topProducts", "recentCompletions"] {
            #expect(try rowIDs(browser, list) == ids(reference[list]), "\(list)")
        }
        #expect(try rowIDs(browser, "oldestPending") == Array(ids(reference["oldestPending"]).prefix(10)))
        let outstanding = try browser.run("return [...document.querySelectorAll('table[data-list=topCustomers] td[data-value]')].map(e => Number(e.dataset.value))") as? [Int]
        #expect(outstanding == (reference["topCustomers"] as? [[String: Any]])?.compactMap { $0["outstanding"] as? Int })
    }

    private func figure(_ browser: Browser, _ path: String) throws -> Int {
        let raw = try browser.run("return document.querySelector('[data-figure=\"\(path)\"]').dataset.value") as? String
        return try #require(raw.flatMap { Int($0) }, "no figure \(path) on the page")
    }

    private func rowIDs(_ browser: Browser, _ list: String) throws -> [String] {
        try browser.run("return [...document.querySelectorAll('table[data-list=\(list)] tbody tr')].map(r => r.dataset.id)") as? [String] ?? []
    }

    /// The sums of the chart's table (requests, completions).
    private func chartSums(_ browser: Browser) throws -> (Int, Int) {
        let sums = try browser.run("""
            const rows = [...document.querySelectorAll('.chart details tbody tr')];
            const n = (cell) => Number(cell.textContent.replace(/,/g, ''));
            return [rows.reduce((s, r) => s + n(r.cells[1]), 0), rows.reduce((s, r) => s + n(r.cells[2]), 0)];
            """) as? [Int] ?? []
        return (sums.first ?? -1, sums.last ?? -1)
    }

    private func keepScreenshot(_ browser: Browser, _ name: String) throws {
        let png = try browser.screenshot()
        #expect(png.starts(with: [0x89, 0x50, 0x4E, 0x47]), "a screenshot is a PNG")
        if let directory = ProcessInfo.processInfo.environment["BACKORDER_SCREENSHOTS"] {
            try png.write(to: URL(fileURLWithPath: directory).appendingPathComponent(name))
        }
    }

    private func ids(_ list: Any?) -> [String] { (list as? [[String: Any]])?.compactMap { $0["id"] as? String } ?? [] }

    private func sum(_ perDay: Any?) -> Int { (perDay as? [String: Int])?.values.reduce(0, +) ?? -1 }

    private func cliOutput(_ arguments: [String]) throws -> String {
        let (status, out, err) = try runBackorder(arguments)
        guard status == 0 else { throw CLIError(message: "backorder \(arguments.joined(separator: " ")) exited \(status): \(err)") }
        return out
    }

    private func cliJSON(_ arguments: [String]) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(try cliOutput(arguments).utf8)) as? [String: Any])
    }

    /// `count` new pending requests (records R-9000nn from `from`) of the generated data's
    /// first customer and product, in one of its sizes, made now.
    private func newRequests(_ input: String, count: Int, from: Int) throws -> String {
        let text = try String(contentsOfFile: input, encoding: .utf8)
        let product = try #require(text.split(separator: "\n").first { $0.contains("\"ProductRegistered\"") })
        let object = try #require(try JSONSerialization.jsonObject(with: Data(product.utf8)) as? [String: Any])
        let fields = try #require(object["data"] as? [String: Any])
        let productID = try #require(fields["productId"] as? String), size = try #require((fields["sizes"] as? [String])?.first)
        return (from..<(from + count)).map { n in
            #"{"id":"00000000-0000-4000-9000-\#(String(format: "%012d", n))","type":"OutOfStockReported","actor":"web-test","data":{"recordId":"R-9\#(String(format: "%05d", n))","customerId":"C-000001","productId":"\#(productID)","size":"\#(size)","quantity":5}}"#
        }.joined(separator: "\n") + "\n"
    }
}
