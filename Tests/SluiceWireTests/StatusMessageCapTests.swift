import Testing
@testable import SluiceWire

/// `grpc-message` is capped after percent-encoding, cut on a character boundary and marked.
@Suite struct StatusMessageCapTests {
    typealias Coding = GRPCStatusMessageCoding

    @Test func shortMessagesAreUntouched() {
        #expect(Coding.encode("topic \"a\" does not exist") == "topic \"a\" does not exist")
        #expect(Coding.encode("100% ✓") == "100%25 %E2%9C%93")
        #expect(Coding.encode("") == "")
    }

    @Test func asciiIsCutToTheCapAndMarked() {
        let encoded = Coding.encode(String(repeating: "z", count: 20_000))
        #expect(encoded.utf8.count == Coding.maxEncodedBytes)
        #expect(encoded == String(repeating: "z", count: Coding.maxEncodedBytes - 3) + "...")
    }

    @Test func exactlyTheCapIsNotCut() {
        let fits = String(repeating: "a", count: Coding.maxEncodedBytes)
        #expect(Coding.encode(fits) == fits)
        // One byte more and the message is cut, leaving room for the marker.
        let encoded = Coding.encode(fits + "b")
        #expect(encoded == String(repeating: "a", count: Coding.maxEncodedBytes - 3) + "...")
    }

    @Test func multiByteCharactersAreNeverSplit() {
        // "日" is 3 UTF-8 bytes, 9 once encoded (%E6%97%A5): 1,021 bytes hold 113 of them.
        let encoded = Coding.encode(String(repeating: "日", count: 2_000))
        #expect(encoded == String(repeating: "%E6%97%A5", count: 113) + "...")
        #expect(Coding.decode(encoded) == String(repeating: "日", count: 113) + "...")
        // An offset by one ASCII byte moves the cut, still on a character boundary.
        let shifted = Coding.encode("x" + String(repeating: "日", count: 2_000))
        #expect(shifted == "x" + String(repeating: "%E6%97%A5", count: 113) + "...")
        #expect(shifted.utf8.count <= Coding.maxEncodedBytes)
    }

    @Test func escapesAreNeverSplit() {
        // "%" encodes as "%25": whatever the alignment, the result holds whole escapes.
        for padding in 0..<3 {
            let encoded = Coding.encode(String(repeating: "y", count: padding) + String(repeating: "%", count: 1_000))
            #expect(encoded.utf8.count <= Coding.maxEncodedBytes)
            #expect(encoded.hasSuffix("%25..."))
            #expect(Coding.decode(encoded) == String(repeating: "y", count: padding)
                + String(repeating: "%", count: (Coding.maxEncodedBytes - 3 - padding) / 3) + "...")
        }
    }

    @Test func graphemeClustersAreKeptWhole() {
        // "e" + U+0301 is one character of 3 bytes (e%CC%81 encoded, 7 bytes).
        let message = String(repeating: "e\u{301}", count: 500)
        let encoded = Coding.encode(message, maxBytes: 20)
        // 17 bytes before the marker: two whole characters (14 bytes), not a lone "e".
        #expect(encoded == "e%CC%81e%CC%81...")
    }

    @Test func aBudgetTooSmallForTheMarkerLeavesTheMessageOut() {
        #expect(Coding.encode("hello", maxBytes: 5) == "hello")
        #expect(Coding.encode("hello!", maxBytes: 5) == "he...")
        #expect(Coding.encode("hello", maxBytes: 2) == "")
        #expect(Coding.encode("hello", maxBytes: -40) == "")
    }

    @Test func quotingKeepsAShortPrefixOfClientInput() {
        #expect(GRPCStatus.quoting("orders") == "\"orders\"")
        let name = String(repeating: "z", count: 20_000)
        #expect(GRPCStatus.quoting(name) == "\"" + String(repeating: "z", count: 64) + "...\" (20000 bytes)")
        #expect(GRPCStatus.quoting(String(repeating: "日", count: 64)) == "\"" + String(repeating: "日", count: 64) + "\"")
        #expect(
            GRPCStatus.quoting(String(repeating: "日", count: 65))
                == "\"" + String(repeating: "日", count: 64) + "...\" (195 bytes)")
    }
}
