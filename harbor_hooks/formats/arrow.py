"""Arrow types of the exported columns: fixed, so shards written by different workers concatenate."""

from __future__ import annotations

import json

import pyarrow as pa

TEXT = pa.large_string()  # one message may exceed 2 GiB of offsets across a batch
# a JSON value (tool-call arguments, a tool definition): Arrow's JSON type, which Parquet
# stores as its JSON logical type and `datasets` reads as datasets.Json (decoded objects)
JSON = pa.json_()

MESSAGE = pa.struct([("role", pa.string()), ("content", TEXT)])
SHAREGPT_MESSAGE = pa.struct([("from", pa.string()), ("value", TEXT)])
TOOL_CALL = pa.struct([
    ("id", pa.string()), ("type", pa.string()),
    ("function", pa.struct([("name", pa.string()), ("arguments", JSON)])),
])
CHAT_MESSAGE = pa.struct([
    ("role", pa.string()), ("content", TEXT), ("reasoning_content", TEXT),
    ("tool_calls", pa.list_(TOOL_CALL)), ("tool_call_id", pa.string()), ("train", pa.bool_()),
])
SHAREGPT_TURN = pa.struct([("from", pa.string()), ("value", TEXT), ("train", pa.bool_())])
TOOLS = pa.list_(JSON)

META_FIELDS = [
    ("agent", pa.string()),
    ("model", pa.string()),
    ("model_provider", pa.string()),
    ("date", pa.string()),
    ("task", pa.string()),
    ("episode", pa.string()),
    ("run_id", pa.string()),
    ("trial_name", pa.string()),
    ("result", pa.string()),
    ("trace_source", pa.string()),
    ("reward", pa.float64()),
    ("success", pa.bool_()),
    ("n_turns", pa.int32()),
    ("n_tool_calls", pa.int32()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("source_path", pa.string()),
]


MEDIA = pa.struct([("bytes", pa.binary()), ("path", pa.string())])  # datasets.Image and datasets.Audio storage


ARROW_TO_DTYPE = {"double": "float64", "float": "float32", "halffloat": "float16"}


def hf_feature(typ: pa.DataType) -> dict:
    """The `datasets` feature (as Features.to_dict() writes it) of an Arrow type."""
    if isinstance(typ, pa.JsonType):
        return {"_type": "Json"}
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        return {"feature": hf_feature(typ.value_type), "_type": "List"}
    if pa.types.is_struct(typ):
        return {f.name: hf_feature(f.type) for f in typ}
    return {"dtype": ARROW_TO_DTYPE.get(str(typ), str(typ)), "_type": "Value"}


def with_media_features(schema: pa.Schema) -> pa.Schema:
    """Declare the `images` and `audio` columns as lists of datasets.Image and datasets.Audio
    in the schema's metadata, which Dataset.from_file reads; every other column keeps its
    plain type."""
    features = {f.name: hf_feature(f.type) for f in schema}
    features["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    features["audio"] = {"feature": {"_type": "Audio"}, "_type": "List"}
    return schema.with_metadata({"huggingface": json.dumps({"info": {"features": features}})})


def storage_type(typ: pa.DataType) -> pa.DataType:
    """typ with every extension type (JSON) replaced by its storage type: what rows are
    converted to (pyarrow converts no Python value to an extension type), then cast to typ."""
    if isinstance(typ, pa.BaseExtensionType):
        return typ.storage_type
    if pa.types.is_list(typ):
        return pa.list_(storage_type(typ.value_type))
    if pa.types.is_large_list(typ):
        return pa.large_list(storage_type(typ.value_type))
    if pa.types.is_struct(typ):
        return pa.struct([f.with_type(storage_type(f.type)) for f in typ])
    return typ


def storage_schema(schema: pa.Schema) -> pa.Schema:
    """schema with storage types (the schema itself when it has no extension type)."""
    storage = pa.schema([f.with_type(storage_type(f.type)) for f in schema], metadata=schema.metadata)
    return schema if storage.equals(schema) else storage
