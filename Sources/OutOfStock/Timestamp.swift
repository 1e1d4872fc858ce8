/// RFC 3339 timestamps ⇄ microseconds since the Unix epoch (UTC).
public enum Timestamp {
    /// Parses `YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)` (T and Z in either case); nil
    /// when malformed or not a real date and time. Fractions beyond microseconds are cut.
    public static func parse<Bytes: Collection<UInt8>>(_ text: Bytes) -> Int64? where Bytes.Index == Int {
        let s = text
        guard s.count >= 20 else { return nil }
        let b = s.startIndex
        func digits(_ at: Int, _ n: Int) -> Int? {
            var v = 0
            for i in at..<(at + n) {
                let c = s[b + i]
                guard c >= 48 && c <= 57 else { return nil }
                v = v * 10 + Int(c - 48)
            }
            return v
        }
        guard let year = digits(0, 4), s[b + 4] == 45, let month = digits(5, 2), s[b + 7] == 45, let day = digits(8, 2),
              s[b + 10] == 84 || s[b + 10] == 116, let hour = digits(11, 2), s[b + 13] == 58, let minute = digits(14, 2),
              s[b + 16] == 58, let second = digits(17, 2) else { return nil }
        guard (1...12).contains(month), day >= 1, day <= daysInMonth(year, month), hour < 24, minute < 60, second < 61 else { return nil }
        var i = 19
        var micros = 0
        if s[b + i] == 46 {
            i += 1
            var n = 0
            while i < s.count, s[b + i] >= 48 && s[b + i] <= 57 {
                if n < 6 { micros = micros * 10 + Int(s[b + i] - 48) }
                n += 1
                i += 1
            }
            guard n >= 1 && n <= 9 else { return nil }
            for _ in min(n, 6)..<6 { micros *= 10 }
        }
        guard i < s.count else { return nil }
        var offsetSeconds = 0
        if s[b + i] == 90 || s[b + i] == 122 {
            i += 1
        } else if s[b + i] == 43 || s[b + i] == 45 {
            guard i + 6 == s.count, let oh = digits(i + 1, 2), s[b + i + 3] == 58, let om = digits(i + 4, 2), oh < 24, om < 60 else { return nil }
            offsetSeconds = (oh * 3600 + om * 60) * (s[b + i] == 45 ? -1 : 1)
            i += 6
        } else {
            return nil
        }
        guard i == s.count else { return nil }
        let days = daysFromCivil(year, month, day)
        let seconds = Int64(days) * 86_400 + Int64(hour * 3600 + minute * 60 + min(second, 59)) - Int64(offsetSeconds)
        return seconds * 1_000_000 + Int64(micros)
    }

    /// Parses a string.
    public static func parse(_ text: String) -> Int64? { parse(Array(text.utf8)) }

    /// An RFC 3339 time, or a date (YYYY-MM-DD, its midnight UTC): what the query options
    /// and the server's query strings take.
    public static func parseTimeOrDate(_ text: String) -> Int64? {
        if let t = parse(text) { return t }
        if text.utf8.count == 10 { return parse(text + "T00:00:00Z") }
        return nil
    }

    /// Formats as `YYYY-MM-DDThh:mm:ss.mmmZ` (milliseconds, UTC).
    public static func format(_ time: Int64) -> String {
        // Clamped to years 0000–9999, the range RFC 3339 can write.
        let micros = min(max(time, -62_167_219_200_000_000), 253_402_300_799_999_999)
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (y, m, d) = civilFromDays(Int(days))
        let millis = Int((micros - seconds * 1_000_000) / 1_000)
        func pad(_ v: Int, _ n: Int) -> String { let s = String(v); return String(repeating: "0", count: max(0, n - s.count)) + s }
        return "\(pad(y, 4))-\(pad(m, 2))-\(pad(d, 2))T\(pad(secondOfDay / 3600, 2)):\(pad(secondOfDay / 60 % 60, 2)):\(pad(secondOfDay % 60, 2)).\(pad(millis, 3))Z"
    }

    /// Appends the time as RFC 3339 in UTC, exactly: `YYYY-MM-DDThh:mm:ss.mmmZ`, with three
    /// more digits (`.mmmuuuZ`) when it is not a whole millisecond — so that parsing it
    /// gives the same microsecond back. Years 0000–9999.
    public static func appendExact(_ time: Int64, to out: inout [UInt8]) {
        let micros = min(max(time, -62_167_219_200_000_000), 253_402_300_799_999_999)
        let seconds = micros >= 0 ? micros / 1_000_000 : (micros - 999_999) / 1_000_000
        let days = seconds >= 0 ? seconds / 86_400 : (seconds - 86_399) / 86_400
        let secondOfDay = Int(seconds - days * 86_400)
        let (y, m, d) = civilFromDays(Int(days))
        let fraction = Int(micros - seconds * 1_000_000)
        let exactMillis = fraction % 1_000 == 0
        // Written into a fixed buffer, then appended once.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 28) { text in
            var at = 0
            func digits(_ value: Int, _ count: Int) {
                var v = value
                for k in stride(from: count - 1, through: 0, by: -1) {
                    text[at + k] = UInt8(ascii: "0") &+ UInt8(v % 10)
                    v /= 10
                }
                at += count
            }
            func char(_ c: Unicode.Scalar) {
                text[at] = UInt8(ascii: c)
                at += 1
            }
            digits(y, 4); char("-"); digits(m, 2); char("-"); digits(d, 2); char("T")
            digits(secondOfDay / 3600, 2); char(":"); digits(secondOfDay / 60 % 60, 2); char(":"); digits(secondOfDay % 60, 2); char(".")
            if exactMillis { digits(fraction / 1_000, 3) } else { digits(fraction, 6) }
            char("Z")
            out.append(contentsOf: UnsafeBufferPointer(rebasing: text[0..<at]))
        }
    }

    static func daysInMonth(_ year: Int, _ month: Int) -> Int {
        switch month {
        case 2: (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 ? 29 : 28
        case 4, 6, 9, 11: 30
        default: 31
        }
    }

    /// The day (days since 1970-01-01, rounded down) a time falls on, in UTC.
    public static func daysSinceEpoch(_ time: Int64) -> Int64 {
        let day: Int64 = 86_400_000_000
        return time >= 0 ? time / day : -((-(time + 1)) / day) - 1
    }

    /// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
    public static func daysFromCivil(_ year: Int, _ month: Int, _ day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }

    /// The (year, month, day) of a day number (days since 1970-01-01).
    public static func civilFromDays(_ days: Int) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let d = doy - (153 * mp + 2) / 5 + 1
        let m = mp < 10 ? mp + 3 : mp - 9
        return (yoe + era * 400 + (m <= 2 ? 1 : 0), m, d)
    }
}
