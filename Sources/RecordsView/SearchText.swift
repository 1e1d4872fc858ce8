import Foundation

/// How free text is split into searchable words: lower-cased runs of letters and digits,
/// in Unicode's composed form (NFC), so that "café" typed either way is one word, and the
/// sorted tokens of a query table are in code-point order, where a prefix's matches are
/// contiguous.
enum SearchText {
    /// The words of `text`: maximal runs of letters, digits and combining marks, lower-cased.
    static func words(_ text: String) -> [String] {
        var words: [String] = [], word = String.UnicodeScalarView(), ascii = true
        func flush() {
            guard !word.isEmpty else { return }
            let w = String(word)
            words.append(ascii ? w : w.lowercased().precomposedStringWithCanonicalMapping)
            word = String.UnicodeScalarView()
            ascii = true
        }
        for scalar in text.unicodeScalars {
            switch scalar.value {
            case 0x41...0x5A: word.append(Unicode.Scalar(scalar.value | 0x20) ?? scalar)
            case 0x61...0x7A, 0x30...0x39: word.append(scalar)
            case 0..<0x80: flush()
            default:
                // Scalar properties, not Character ones: much cheaper, and the index and
                // the query split text the same way because both come here.
                let p = scalar.properties
                if p.isAlphabetic || p.numericType != nil || [.nonspacingMark, .spacingMark, .enclosingMark].contains(p.generalCategory) {
                    word.append(scalar)
                    ascii = false
                } else {
                    flush()
                }
            }
        }
        flush()
        return words
    }

    /// The words a request can be found by.
    static func words(of r: RecordRow) -> [String] {
        words(r.customerName + " " + r.productName + " " + (r.notes ?? ""))
    }
}
