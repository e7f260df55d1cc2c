"""Comments of the contract, read from the descriptor set's source info.

``SourceCodeInfo`` locates each comment by a path of field numbers and
indexes into the FileDescriptorProto (message_type=4, field=2, ...); this
turns those paths into full symbol names: ``cqrs.query.v1.User``,
``cqrs.query.v1.User.email``, ``cqrs.query.v1.QueryService.GetUser``,
``cqrs.common.v1.UserStatus.USER_STATUS_ACTIVE`` (an enum value keeps its
enum's name in the key, so values of two enums never collide).
"""

from __future__ import annotations

from google.protobuf import descriptor_pb2

# Field numbers in descriptor.proto.
_FILE_MESSAGE, _FILE_ENUM, _FILE_SERVICE = 4, 5, 6
_MESSAGE_FIELD, _MESSAGE_NESTED, _MESSAGE_ENUM, _MESSAGE_ONEOF = 2, 3, 4, 8
_ENUM_VALUE, _SERVICE_METHOD = 2, 2


def symbol_comments(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, str]:
    """Leading comment (cleaned) of every commented symbol, by full name."""
    out: dict[str, str] = {}
    for file_proto in fds.file:
        _File(file_proto, out).collect()
    return out


def clean(comment: str) -> str:
    """A comment without the single space after ``//`` and outer blank lines."""
    lines = [line[1:] if line.startswith(" ") else line for line in comment.splitlines()]
    return "\n".join(lines).strip()


def summary(comment: str) -> str:
    """The first sentence of a comment, for a one-line summary."""
    flat = " ".join(comment.split())
    end = flat.find(". ")
    return flat if end < 0 else flat[: end + 1]


class _File:
    def __init__(self, file_proto: descriptor_pb2.FileDescriptorProto, out: dict[str, str]):
        self.file = file_proto
        self.out = out
        self.located = {
            tuple(loc.path): clean(loc.leading_comments)
            for loc in file_proto.source_code_info.location
            if loc.leading_comments.strip()
        }
        self.prefix = f"{file_proto.package}." if file_proto.package else ""

    def collect(self) -> None:
        for i, message in enumerate(self.file.message_type):
            self.message(message, (_FILE_MESSAGE, i), self.prefix + message.name)
        for i, enum in enumerate(self.file.enum_type):
            self.enum(enum, (_FILE_ENUM, i), self.prefix + enum.name)
        for i, service in enumerate(self.file.service):
            name = self.prefix + service.name
            self.note((_FILE_SERVICE, i), name)
            for j, method in enumerate(service.method):
                self.note((_FILE_SERVICE, i, _SERVICE_METHOD, j), f"{name}.{method.name}")

    def note(self, path: tuple[int, ...], name: str) -> None:
        text = self.located.get(path)
        if text:
            self.out[name] = text

    def message(
        self, message: descriptor_pb2.DescriptorProto, path: tuple[int, ...], name: str
    ) -> None:
        self.note(path, name)
        for i, field in enumerate(message.field):
            self.note((*path, _MESSAGE_FIELD, i), f"{name}.{field.name}")
        for i, oneof in enumerate(message.oneof_decl):
            self.note((*path, _MESSAGE_ONEOF, i), f"{name}.{oneof.name}")
        for i, nested in enumerate(message.nested_type):
            self.message(nested, (*path, _MESSAGE_NESTED, i), f"{name}.{nested.name}")
        for i, enum in enumerate(message.enum_type):
            self.enum(enum, (*path, _MESSAGE_ENUM, i), f"{name}.{enum.name}")

    def enum(
        self, enum: descriptor_pb2.EnumDescriptorProto, path: tuple[int, ...], name: str
    ) -> None:
        self.note(path, name)
        for i, value in enumerate(enum.value):
            self.note((*path, _ENUM_VALUE, i), f"{name}.{value.name}")
