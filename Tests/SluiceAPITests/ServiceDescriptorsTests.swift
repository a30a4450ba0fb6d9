import Foundation
import NIOCore
import SluiceAPI
import Testing

@Suite(.timeLimit(.minutes(2))) struct ServiceDescriptorsTests {
    @Test func listsEveryServedServiceAndNotEtcd() {
        let names = Set(ServiceDescriptors.serviceNames)
        #expect(names == [
            "sluice.v1.Broker", "sluice.v1.Groups", "sluice.test.v1.Echo", "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection",
        ])
        #expect(ServiceDescriptors.fileDescriptor(named: "etcd/etcdserverpb/kv.proto") == nil)
    }

    @Test func fileDescriptorsAreSerializedFileDescriptorProtos() throws {
        let broker = try #require(ServiceDescriptors.fileDescriptor(named: "sluice/v1/broker.proto"))
        // FileDescriptorProto field 1 (name) comes first: 0a <len> "sluice/v1/broker.proto".
        let name = Array("sluice/v1/broker.proto".utf8)
        #expect(Array(broker.prefix(2 + name.count)) == [0x0A, UInt8(name.count)] + name)
        #expect(ServiceDescriptors.fileDescriptor(named: "nope.proto") == nil)
        #expect(ServiceDescriptors.fileNames.count == 7)
    }

    @Test(arguments: [
        ("sluice.v1.Broker", "sluice/v1/broker.proto"),
        ("sluice.v1.Broker.Produce", "sluice/v1/broker.proto"),
        ("sluice.v1.ProduceRequest", "sluice/v1/broker.proto"),
        ("sluice.v1.TopicDescription.ConfigsEntry", "sluice/v1/broker.proto"),
        ("sluice.v1.Acks", "sluice/v1/broker.proto"),
        ("sluice.v1.RecordBatch", "sluice/v1/records.proto"),
        ("sluice.v1.Compression", "sluice/v1/records.proto"),
        (".sluice.v1.Record", "sluice/v1/records.proto"),
        ("sluice.test.v1.Echo.Update", "sluice/test/v1/echo.proto"),
        ("grpc.health.v1.HealthCheckResponse.ServingStatus", "grpc/health/v1/health.proto"),
        ("grpc.health.v1.Health.Watch", "grpc/health/v1/health.proto"),
        ("grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"),
        ("grpc.reflection.v1alpha.ErrorResponse", "grpc/reflection/v1alpha/reflection.proto"),
    ])
    func findsTheFileDefiningASymbol(_ symbol: String, _ file: String) {
        #expect(ServiceDescriptors.fileContaining(symbol: symbol) == file)
    }

    @Test(arguments: ["sluice.v1.Nope", "sluice.v1.Broker.Nope", "sluice.v1", "", "etcdserverpb.KV"])
    func unknownSymbolsAreNil(_ symbol: String) {
        #expect(ServiceDescriptors.fileContaining(symbol: symbol) == nil)
    }

    @Test func dependencies() {
        #expect(ServiceDescriptors.dependencies(ofFile: "sluice/v1/broker.proto") == ["sluice/v1/records.proto"])
        #expect(ServiceDescriptors.dependencies(ofFile: "sluice/v1/records.proto") == [])
        #expect(ServiceDescriptors.dependencies(ofFile: "nope.proto") == [])
        #expect(ServiceDescriptors.fileWithDependencies(named: "sluice/v1/broker.proto")
                == ["sluice/v1/broker.proto", "sluice/v1/records.proto"])
        #expect(ServiceDescriptors.fileWithDependencies(named: "nope.proto") == [])
    }

    @Test func embeddedBytesMatchTheCommittedDescriptorSet() throws {
        // The C array and descriptor_set.pb come from one generate.sh run; if they drift,
        // reflection would describe stale protos.
        let url = URL(fileURLWithPath: #filePath)
            .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Sources/CSluiceProto/generated/descriptor_set.pb")
        let committed = try Data(contentsOf: url)
        var reassembled: [UInt8] = []
        for name in ServiceDescriptors.fileNames {
            let file = try #require(ServiceDescriptors.fileDescriptor(named: name))
            // FileDescriptorSet.file = field 1, length-delimited: 0a <varint len> <bytes>.
            reassembled.append(0x0A)
            var length = file.count
            while length >= 0x80 {
                reassembled.append(UInt8(length & 0x7F) | 0x80)
                length >>= 7
            }
            reassembled.append(UInt8(length))
            reassembled += file
        }
        #expect(reassembled == [UInt8](committed))
    }

    @Test func reflectionAnswerCarriesTheFilesItNames() throws {
        // How a reflection handler uses this API: a FileDescriptorResponse for a symbol.
        let file = try #require(ServiceDescriptors.fileContaining(symbol: "sluice.v1.Broker.Subscribe"))
        let files = ServiceDescriptors.fileWithDependencies(named: file).compactMap(ServiceDescriptors.fileDescriptor(named:))
        let response = ServerReflectionResponse(messageResponse: .fileDescriptorResponse(
            .init(fileDescriptorProto: files.map { ByteBuffer(bytes: $0) })))
        let decoded = try ServerReflectionResponse(protobuf: response.protobufBytes())
        guard case .fileDescriptorResponse(let descriptors)? = decoded.messageResponse else {
            Issue.record("wrong oneof case")
            return
        }
        #expect(descriptors.fileDescriptorProto.count == 2)
    }
}
