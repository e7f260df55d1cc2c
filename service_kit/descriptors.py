"""The compiled contract: the FileDescriptorSet generated from protos/.

It is read once per process. It carries source info (comments), which is
what reflection serves to grpcurl/evans and what the gateway routes from.
"""

from __future__ import annotations

import functools
import importlib.resources

from google.protobuf import descriptor_pb2, descriptor_pool

_RESOURCE = "descriptor_set.binpb"


@functools.cache
def descriptor_set() -> descriptor_pb2.FileDescriptorSet:
    """Returns the project's FileDescriptorSet (all files, imports included)."""
    raw = (importlib.resources.files("cqrs") / _RESOURCE).read_bytes()
    fds = descriptor_pb2.FileDescriptorSet()
    fds.ParseFromString(raw)
    return fds


@functools.cache
def files_by_name() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    """Every FileDescriptorProto of the set keyed by file name."""
    return {f.name: f for f in descriptor_set().file}


@functools.cache
def pool() -> descriptor_pool.DescriptorPool:
    """A descriptor pool holding exactly the files of the set.

    It is separate from the default pool the _pb2 modules register into, so
    that files are looked up as compiled by buf, with their source info.
    """
    p = descriptor_pool.DescriptorPool()
    for f in descriptor_set().file:
        p.Add(f)
    return p
