"""Server reflection fed from the descriptor set, comments included.

grpcio-reflection serialises files with ``FileDescriptor.CopyToProto``,
which drops source info, so grpcurl ``describe`` would show no comments.
We hand it a pool whose files copy the FileDescriptorProto exactly as buf
compiled it.
"""

from __future__ import annotations

from collections.abc import Iterable

import grpc
from google.protobuf import descriptor, descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection

from service_kit import descriptors


class _SourceFile:
    """A FileDescriptor stand-in whose CopyToProto keeps source info."""

    def __init__(self, fd: descriptor.FileDescriptor) -> None:
        self._fd = fd
        self.name: str = fd.name

    @property
    def dependencies(self) -> list[_SourceFile]:
        return [_SourceFile(d) for d in self._fd.dependencies]

    def CopyToProto(self, proto: descriptor_pb2.FileDescriptorProto) -> None:
        original = descriptors.files_by_name().get(self.name)
        if original is None:
            self._fd.CopyToProto(proto)
        else:
            proto.CopyFrom(original)


class _SourcePool:
    """The subset of DescriptorPool that the reflection servicer calls.

    Our own files come from the descriptor set; anything else (the health
    service, reflection itself) from the default pool its _pb2 registered in.
    """

    def __init__(self) -> None:
        self._pool = descriptors.pool()
        self._default = descriptor_pool.Default()

    def FindFileByName(self, name: str) -> _SourceFile:
        try:
            return _SourceFile(self._pool.FindFileByName(name))
        except KeyError:
            return _SourceFile(self._default.FindFileByName(name))

    def FindFileContainingSymbol(self, symbol: str) -> _SourceFile:
        for pool in (self._pool, self._default):
            try:
                return _SourceFile(pool.FindFileContainingSymbol(symbol))
            except KeyError:
                pass
        # upb's pool does not index methods: `describe Service.Method` asks for
        # "pkg.Service.Method", which lives in the file of "pkg.Service".
        parent, _, _ = symbol.rpartition(".")
        for pool in (self._pool, self._default):
            try:
                return _SourceFile(pool.FindFileContainingSymbol(parent))
            except KeyError:
                pass
        raise KeyError(symbol)

    def FindMessageTypeByName(self, name: str) -> descriptor.Descriptor:
        return self._pool.FindMessageTypeByName(name)

    def FindExtensionByNumber(
        self, message: descriptor.Descriptor, number: int
    ) -> descriptor.FieldDescriptor:
        return self._pool.FindExtensionByNumber(message, number)

    def FindAllExtensions(self, message: descriptor.Descriptor) -> list[descriptor.FieldDescriptor]:
        return list(self._pool.FindAllExtensions(message))


def enable(server: grpc.aio.Server, service_names: Iterable[str]) -> None:
    """Serves reflection (v1alpha, what grpcurl 1.8 speaks) for these services."""
    names = [*service_names, reflection.SERVICE_NAME]
    # Duck-typed pool: the servicer calls only the methods _SourcePool has.
    reflection.enable_server_reflection(names, server, pool=_SourcePool())  # type: ignore[arg-type]
