"""Settings for every profile, from environment variables (prefix ``ONDATA_``), an optional ``.env``
file, or keyword arguments. Azure variables also accept their conventional names
(``AZURE_SEARCH_ENDPOINT``, ``AZURE_OPENAI_ENDPOINT``, ...).

Secrets are ``SecretStr`` and never printed. When a key is absent, Azure clients authenticate with
Entra ID (``DefaultAzureCredential`` from azure-identity).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def _alias(*names: str) -> AliasChoices:
    return AliasChoices(*names)


def shared_datasets_dir() -> Path:
    """Where the shared benchmark datasets live (``ONDATA_SHARED_DATASETS``, default ``../shared/datasets``)."""
    return Path(os.environ.get("ONDATA_SHARED_DATASETS", Path(__file__).resolve().parents[1].parent / "shared" / "datasets"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ONDATA_", env_file=".env", extra="ignore", populate_by_name=True)

    # --- profile and local storage
    profile: Literal["local", "azure"] = "local"
    index_dir: Path = Field(Path(".ondata"), description="Folder of the local FAISS + SQLite index")
    embedder: Literal["local", "hashing", "azure_openai"] | None = Field(
        None, description="Embedding backend; default: local for the local profile, azure_openai for azure"
    )
    local_model: str | None = Field(None, description="sentence-transformers model path or name (default all-MiniLM-L6-v2)")
    hashing_dimensions: int = 256
    embedding_cache: Path | None = Field(None, description="SQLite embedding cache (default: <index_dir>/embeddings.sqlite)")
    embedding_cache_dtype: Literal["float16", "float32"] = Field(
        "float16", description="Storage precision of cached vectors: float16 (half the bytes) or float32 (exact)"
    )

    # --- local index: vector arm (indexers.local_vectors.VectorConfig)
    vector_index: Literal["auto", "flat", "ivf", "hnsw"] = Field(
        "auto", description="Local vector index: flat (exact), ivf (PQ codes in inverted lists, re-ranked exactly), "
        "hnsw (approximate) or auto (exact below vector_exact_below, ivf from there)")
    vector_exact_below: int = Field(20_000, ge=0, description="auto: exact search below this many vectors, IVF from there")
    ivf_nlist: int = Field(0, ge=0, description="IVF lists (0: about sqrt(vectors))")
    ivf_nprobe: int = Field(0, ge=0, description="IVF lists searched per query (0: three quarters of them)")
    ivf_rerank: int = Field(30, ge=1, description="IVF candidates per hit re-ranked exactly from the float32 vectors")
    hnsw_m: int = Field(32, ge=2, description="HNSW links per node")
    hnsw_ef_construction: int = Field(80, ge=1, description="HNSW beam width when building")
    hnsw_ef_search: int = Field(64, ge=1, description="HNSW beam width when searching (raised to k when smaller)")
    faiss_threads: int = Field(1, ge=1, description="FAISS OpenMP threads (in each thread that searches)")

    # --- ingestion
    chunk_size: int = 512
    chunk_overlap: int = 51
    chunk_page_bounded: bool = Field(False, description="Chunks of paged documents never cross a page boundary")
    max_document_bytes: int = 50 * 1024 * 1024
    groups_metadata_key: str = "groups"

    # --- retries of every remote backend (indexers.retry; the backend is the one layer that retries)
    retry_attempts: int = Field(5, ge=1, description="HTTP attempts per request or batch, the first included")
    retry_backoff_seconds: float = Field(0.5, ge=0, description="First backoff when the service gives no Retry-After")
    retry_max_wait_seconds: float = Field(60.0, ge=0, description="Longest Retry-After wait honoured (longer is capped)")

    # --- retrieval
    public_when_no_groups: bool = Field(True, description="Chunks without ACL groups are visible to every caller")
    acl_field: str = Field("group_ids", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
                           description="Field of On Your Data's document-level access control filter "
                                       "(FIELD/any(g: search.in(g, 'a, b'))): narrows the caller's groups")
    chat: Literal["extractive", "azure_openai"] | None = Field(
        None, description="Chat model; default: extractive for local, azure_openai for azure"
    )

    # --- ondata serve (retrieval.server.ServerLimits; the API key is read by `ondata serve --api-key-env`)
    serve_max_body_bytes: int = Field(1 << 20, ge=1024, description="Largest request body accepted (413 above)")
    serve_max_concurrency: int = Field(8, ge=1, description="Requests in flight at once (429 + Retry-After above)")
    serve_request_timeout_seconds: float = Field(120.0, gt=0, description="A request with no response by then gets 408")
    serve_max_question_tokens: int = Field(2000, ge=1, description="Longest question accepted (400 above)")

    # --- Azure AI Search
    azure_search_endpoint: str | None = Field(None, validation_alias=_alias("ONDATA_AZURE_SEARCH_ENDPOINT", "AZURE_SEARCH_ENDPOINT"))
    azure_search_index: str = Field("ondata", validation_alias=_alias("ONDATA_AZURE_SEARCH_INDEX", "AZURE_SEARCH_INDEX"))
    azure_search_key: SecretStr | None = Field(None, validation_alias=_alias("ONDATA_AZURE_SEARCH_KEY", "AZURE_SEARCH_KEY"))
    azure_search_filterable_metadata: str = Field(
        "", description="Comma-separated metadata keys that become filterable fields (meta_<key>) in Azure AI Search"
    )
    azure_search_quantization: Literal["scalar", "binary"] | None = Field(None, description="Vector compression")
    azure_search_hybrid_fusion: Literal["client", "service"] = Field(
        "client", description="Fuse hybrid results client-side (per-arm scores kept) or by the service (one request)"
    )

    # --- Azure OpenAI (or any OpenAI-compatible endpoint)
    azure_openai_endpoint: str | None = Field(None, validation_alias=_alias("ONDATA_AZURE_OPENAI_ENDPOINT", "AZURE_OPENAI_ENDPOINT"))
    azure_openai_api_key: SecretStr | None = Field(None, validation_alias=_alias("ONDATA_AZURE_OPENAI_API_KEY", "AZURE_OPENAI_API_KEY"))
    azure_openai_api_version: str = Field("2024-10-21", validation_alias=_alias("ONDATA_AZURE_OPENAI_API_VERSION", "AZURE_OPENAI_API_VERSION", "OPENAI_API_VERSION"))
    azure_openai_embedding_deployment: str = Field(
        "text-embedding-3-small", validation_alias=_alias("ONDATA_AZURE_OPENAI_EMBEDDING_DEPLOYMENT", "AZURE_OPENAI_EMBEDDING_DEPLOYMENT")
    )
    azure_openai_embedding_dimensions: int | None = Field(
        None, validation_alias=_alias("ONDATA_AZURE_OPENAI_EMBEDDING_DIMENSIONS", "AZURE_OPENAI_EMBEDDING_DIMENSIONS")
    )
    azure_openai_chat_deployment: str = Field(
        "gpt-4o-mini", validation_alias=_alias("ONDATA_AZURE_OPENAI_CHAT_DEPLOYMENT", "AZURE_OPENAI_CHAT_DEPLOYMENT")
    )

    # --- Azure Blob Storage
    azure_storage_connection_string: SecretStr | None = Field(
        None, validation_alias=_alias("ONDATA_AZURE_STORAGE_CONNECTION_STRING", "AZURE_STORAGE_CONNECTION_STRING")
    )
    azure_storage_account_url: str | None = Field(None, validation_alias=_alias("ONDATA_AZURE_STORAGE_ACCOUNT_URL", "AZURE_STORAGE_ACCOUNT_URL"))
    azure_storage_sas_token: SecretStr | None = Field(None, validation_alias=_alias("ONDATA_AZURE_STORAGE_SAS_TOKEN", "AZURE_STORAGE_SAS_TOKEN"))
    azure_storage_container: str | None = Field(None, validation_alias=_alias("ONDATA_AZURE_STORAGE_CONTAINER", "AZURE_STORAGE_CONTAINER"))
    azure_storage_prefix: str = Field("", validation_alias=_alias("ONDATA_AZURE_STORAGE_PREFIX", "AZURE_STORAGE_PREFIX"))

    @model_validator(mode="after")
    def _check(self) -> "Settings":
        from ondata.redaction import register_secret

        register_secret(*(v.get_secret_value() for v in self.__dict__.values() if isinstance(v, SecretStr)))
        if self.chunk_size < 16:
            raise ValueError(f"chunk_size must be at least 16 tokens, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size / 2:
            raise ValueError(f"chunk_overlap must be >= 0 and smaller than half of chunk_size ({self.chunk_size}), got {self.chunk_overlap}")
        return self

    @property
    def embedder_kind(self) -> str:
        return self.embedder or ("azure_openai" if self.profile == "azure" else "local")

    @property
    def chat_kind(self) -> str:
        return self.chat or ("azure_openai" if self.profile == "azure" else "extractive")

    @property
    def embedding_cache_path(self) -> Path:
        return self.embedding_cache or (self.index_dir / "embeddings.sqlite")


#: Environment variable names whose values are secrets wherever they come from (redacted in every log).
SECRET_NAME = re.compile(r"(^|_)(KEY|SECRET|TOKEN|PASSWORD|SAS|CONNECTION_STRING|CREDENTIALS?)(_|$)", re.IGNORECASE)


def secret_environment_values() -> list[str]:
    """The values of environment variables named like secrets (``*_KEY``, ``*_TOKEN``, ``*_CONNECTION_STRING``...)."""
    return [v for k, v in os.environ.items() if v and SECRET_NAME.search(k)]


def environment_value(name: str) -> str | None:
    """The value of environment variable ``name`` (None when unset or empty), e.g. ``ondata serve --api-key-env``."""
    return os.environ.get(name) or None
