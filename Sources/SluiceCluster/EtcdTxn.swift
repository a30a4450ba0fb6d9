public import NIOCore
public import SluiceAPI

// Builders for the comparisons and operations of `EtcdKVClient.txn`, so a metadata write
// reads as what it checks: `.modRevision(key, .equal, seen)` rather than a
// `target`/`targetUnion` pair that must agree (etcd refuses a comparison whose target and
// value disagree).

extension EtcdCompare {
    /// The key's (or every key of `[key, rangeEnd)`'s) create revision compared with
    /// `revision`; 0 is the create revision of a key that does not exist.
    public static func createRevision(
        _ key: ByteBuffer, _ result: CompareResult, _ revision: Int64, rangeEnd: ByteBuffer = ByteBuffer()
    ) -> EtcdCompare {
        EtcdCompare(result: result, target: .create, key: key, targetUnion: .createRevision(revision), rangeEnd: rangeEnd)
    }

    /// The key's last modification revision compared with `revision` (0 when it does not
    /// exist): the compare-and-swap of a value read at that revision.
    public static func modRevision(
        _ key: ByteBuffer, _ result: CompareResult, _ revision: Int64, rangeEnd: ByteBuffer = ByteBuffer()
    ) -> EtcdCompare {
        EtcdCompare(result: result, target: .mod, key: key, targetUnion: .modRevision(revision), rangeEnd: rangeEnd)
    }

    /// The key's version (modifications since creation; 0 when it does not exist).
    public static func version(
        _ key: ByteBuffer, _ result: CompareResult, _ version: Int64, rangeEnd: ByteBuffer = ByteBuffer()
    ) -> EtcdCompare {
        EtcdCompare(result: result, target: .version, key: key, targetUnion: .version(version), rangeEnd: rangeEnd)
    }

    /// The key's value compared with `value` byte by byte. A key that does not exist
    /// fails every value comparison, `.notEqual` included.
    public static func value(_ key: ByteBuffer, _ result: CompareResult, _ value: ByteBuffer) -> EtcdCompare {
        EtcdCompare(result: result, target: .value, key: key, targetUnion: .value(value))
    }

    /// The lease the key is attached to (0 for none or when it does not exist).
    public static func lease(_ key: ByteBuffer, _ result: CompareResult, _ lease: Int64) -> EtcdCompare {
        EtcdCompare(result: result, target: .lease, key: key, targetUnion: .lease(lease))
    }

    /// The key does not exist.
    public static func absent(_ key: ByteBuffer) -> EtcdCompare {
        createRevision(key, .equal, 0)
    }
}

extension EtcdRequestOp {
    /// Sets `key` to `value`, attached to `lease` unless 0.
    public static func put(_ key: ByteBuffer, _ value: ByteBuffer, lease: Int64 = 0) -> EtcdRequestOp {
        EtcdRequestOp(request: .requestPut(EtcdPutRequest(key: key, value: value, lease: lease)))
    }

    /// Reads `key`, or the keys in `[key, rangeEnd)`.
    public static func range(_ key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer()) -> EtcdRequestOp {
        EtcdRequestOp(request: .requestRange(EtcdRangeRequest(key: key, rangeEnd: rangeEnd)))
    }

    /// Deletes `key`, or the keys in `[key, rangeEnd)`.
    public static func delete(_ key: ByteBuffer, rangeEnd: ByteBuffer = ByteBuffer()) -> EtcdRequestOp {
        EtcdRequestOp(request: .requestDeleteRange(EtcdDeleteRangeRequest(key: key, rangeEnd: rangeEnd)))
    }
}

extension EtcdResponseOp {
    /// The answer of a `.range` operation; nil for any other.
    public var range: EtcdRangeResponse? {
        if case .responseRange(let range)? = response { return range }
        return nil
    }

    /// The answer of a `.put` operation; nil for any other.
    public var put: EtcdPutResponse? {
        if case .responsePut(let put)? = response { return put }
        return nil
    }

    /// The answer of a `.delete` operation; nil for any other.
    public var delete: EtcdDeleteRangeResponse? {
        if case .responseDeleteRange(let delete)? = response { return delete }
        return nil
    }
}
