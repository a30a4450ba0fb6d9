// What a program needs besides the client's own types, so `import SluiceClient` alone is
// enough (docs/client.md, "One import"): the record and admin types of the API (generated
// from proto/sluice/v1, plain Swift values), the status every call reports, the buffer
// type of keys and values, and the logger the clients take. Each is re-exported by name,
// not by module, so the transport, the protobuf-c codec and the rest of NIO stay out of a
// user's namespace.
//
// Values are NIOCore's `ByteBuffer`, as in swift-kafka-client and the rest of the
// server-side Swift ecosystem: a record's bytes are handed from the connection to the
// application without a copy, and `ByteBuffer(string:)`, `ByteBuffer(bytes:)`,
// `String(buffer:)` and `Array(buffer: )` convert at the edges.

@_exported import struct Logging.Logger
@_exported import struct NIOCore.ByteBuffer
@_exported import enum SluiceAPI.Acks
@_exported import enum SluiceAPI.AssignmentStrategy
@_exported import struct SluiceAPI.CommittedOffset
@_exported import struct SluiceAPI.CreateTopicRequest
@_exported import enum SluiceAPI.ErrorCode
@_exported import struct SluiceAPI.GroupDescription
@_exported import struct SluiceAPI.GroupSummary
@_exported import enum SluiceAPI.PerformanceProfile
@_exported import struct SluiceAPI.RecordHeader
@_exported import struct SluiceAPI.ResetOffsetsRequest
@_exported import struct SluiceAPI.TopicDescription
@_exported import struct SluiceAPI.TopicPartitions
@_exported import enum SluiceCompression.RecordCompression
@_exported import struct SluiceWire.GRPCStatus
