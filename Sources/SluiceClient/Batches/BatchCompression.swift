// `RecordCompression` is part of the client's API (ProducerConfiguration.compression), so
// the SluiceClient library hands it on: users write `.zstd` without a second import.
@_exported import SluiceCompression
