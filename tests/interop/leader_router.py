"""A Python client that follows partition leaders, as docs/api.md ("Following partition
leaders") describes: bootstrap from any broker of a list, call Metadata, send each batch
to its partition's leader, and on NOT_LEADER, UNAVAILABLE or a lost connection refresh
the metadata (keeping the answer with the higher revision) and retry within the
delivery timeout. Only grpcio and the stubs generated from proto/ are used.

The interop tests drive it against a real `sluice serve`, so the documented recipe is
tested code, not prose.
"""

from __future__ import annotations

import time

import grpc
from sluice.v1 import broker_pb2, broker_pb2_grpc

# A bound on one call, not a timing assumption.
CALL_BOUND_S = 10.0
# How long to wait before asking again while a partition has no leader.
BACKOFF_S = 0.1


class LeaderRouter:
    def __init__(self, bootstrap: list[str]):
        self.bootstrap = list(bootstrap)
        self.metadata: broker_pb2.MetadataResponse | None = None
        # The broker the kept answer came from: a single node (cluster "") is reached there,
        # whatever address it listens on (it may be a wildcard such as 0.0.0.0).
        self.answered_at = ""
        self.channels: dict[str, grpc.Channel] = {}

    def close(self) -> None:
        for channel in self.channels.values():
            channel.close()
        self.channels.clear()

    def stub(self, address: str) -> broker_pb2_grpc.BrokerStub:
        if address not in self.channels:
            self.channels[address] = grpc.insecure_channel(address)
        return broker_pb2_grpc.BrokerStub(self.channels[address])

    def refresh(self, topics: list[str]) -> None:
        """Asks the brokers it knows, then the bootstrap list, until one answers."""
        known = [b.address for b in self.metadata.brokers] if self.metadata else []
        for address in known + [a for a in self.bootstrap if a not in known]:
            try:
                answer = self.stub(address).Metadata(broker_pb2.MetadataRequest(topics=topics), timeout=CALL_BOUND_S)
            except grpc.RpcError:
                continue
            # Brokers learn changes a moment apart: never go back to an older view.
            if self.metadata is None or answer.metadata_revision >= self.metadata.metadata_revision:
                self.metadata, self.answered_at = answer, address
            return
        raise ConnectionError(f"no broker of {known + self.bootstrap} answered Metadata")

    def leader(self, topic: str, partition: int) -> str | None:
        """The leader's address; None when the metadata names none (yet)."""
        if self.metadata is None:
            return None
        entry = next((t for t in self.metadata.topics if t.name == topic), None)
        if entry is None or entry.error != broker_pb2.ERROR_CODE_NONE or partition >= len(entry.partitions):
            return None
        state = entry.partitions[partition]
        if not state.has_leader:
            return None
        if not self.metadata.cluster:
            return self.answered_at
        return next((b.address for b in self.metadata.brokers if b.id == state.leader_id), None)

    def produce(self, request: broker_pb2.ProduceRequest, delivery_timeout_s: float = 120.0) -> broker_pb2.ProduceResponse:
        """Sends one batch to its leader until it is answered with anything but a
        "go elsewhere" (NOT_LEADER, UNAVAILABLE, a lost connection) or the delivery
        timeout runs out. One stream per call keeps the sketch short; a real client keeps
        one Produce stream per broker and pipelines batches on it."""
        deadline = time.monotonic() + delivery_timeout_s
        while True:
            address = self.leader(request.topic, request.partition)
            if address is not None:
                try:
                    answer = next(iter(self.stub(address).Produce(iter([request]), timeout=CALL_BOUND_S)))
                    if answer.error != broker_pb2.ERROR_CODE_NOT_LEADER:
                        return answer
                except grpc.RpcError as error:
                    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                        raise
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no leader of {request.topic}/{request.partition} took the batch in time")
            if address is None and self.metadata is not None:
                time.sleep(BACKOFF_S)
            self.refresh([request.topic])
