"""One settings object for kgrec.

Sources, strongest first: explicit keyword arguments (the CLI passes its options
this way), ``KGREC_*`` environment variables, a ``.env`` file, an optional TOML file
(``KGREC_CONFIG``, else ``kgrec.toml`` in the home given as ``home=`` or ``KGREC_HOME``),
then defaults. Secrets are ``SecretStr`` and never printed.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

DEFAULT_EMBEDDING_MODEL = "all-MiniLM-L6-v2"
DEFAULT_SPARQL_ENDPOINT = "https://dbpedia.org/sparql"


def _toml_path(home: Path | str | None = None) -> Path | None:
    """``KGREC_CONFIG``, else ``kgrec.toml`` in the home: the one passed to :class:`Settings`
    (``kgrec --home DIR``), else ``KGREC_HOME``, else ``./.kgrec``."""
    explicit = os.environ.get("KGREC_CONFIG")
    if explicit:
        return Path(explicit)
    home = Path(home if home is not None else os.environ.get("KGREC_HOME", ".kgrec"))
    candidate = home / "kgrec.toml"
    return candidate if candidate.is_file() else None


class Settings(BaseSettings):
    """Runtime settings. Construct once at the edge (CLI, benchmark) and pass it down."""

    model_config = SettingsConfigDict(
        env_prefix="KGREC_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    home: Path = Field(default=Path(".kgrec"), description="State dir: embedded DB, caches, models, reports")
    graph_uri: str | None = Field(
        default=None,
        description="neo4j://…, bolt://…, falkordb://host:port; unset = embedded FalkorDB under home",
    )
    graph_name: str = Field(default="kgrec", description="Graph name (FalkorDB; Neo4j: see neo4j_database)")
    neo4j_user: str = Field(
        default="neo4j", validation_alias=AliasChoices("NEO4J_USER", "KGREC_NEO4J_USER")
    )
    neo4j_password: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("NEO4J_PASSWORD", "KGREC_NEO4J_PASSWORD")
    )
    neo4j_database: str | None = Field(
        default=None, description="Neo4j database (default: the server's default; Community has only neo4j)"
    )
    gds_arrow: bool = Field(
        default=True, description="Neo4j GDS: stream projections over Arrow Flight where the server offers it "
        "(Enterprise, Aura); off, or on OpenGDS, the graphdatascience client falls back to Cypher")
    falkordb_password: SecretStr | None = Field(
        default=None, description="Password of a remote FalkorDB (falkordb://)"
    )
    connect_timeout_s: float = Field(default=5.0, gt=0)
    batch_size: int = Field(default=10_000, gt=0, description="Rows per UNWIND batch")
    # FalkorDB's HNSW vector index. FalkorDB's own efRuntime of 10 (candidates per query) ranked a
    # query vector's own item first 75.5 % of the time on 25k random 384-d vectors; 50 does 99.5 %
    # (MiniLM item vectors: recall@10 .952 -> .994) for about 0.3 ms more per query; M 32 lifts the
    # random case's recall@10 from .68 to .87 at twice the build time (benchmarks/falkordb_knn.py)
    falkordb_hnsw_m: int = Field(default=16, gt=1)
    falkordb_hnsw_ef_construction: int = Field(default=200, gt=0)
    falkordb_hnsw_ef_runtime: int = Field(default=50, gt=0)

    embedding_model: str = DEFAULT_EMBEDDING_MODEL
    embedding_batch_size: int = Field(default=128, gt=0)

    sparql_endpoint: str | None = Field(default=None, description="SPARQL endpoint for DBpedia")
    sparql_timeout_s: float = Field(default=10.0, gt=0)
    sparql_rate_limit_per_s: float = Field(default=10.0, gt=0)
    sparql_batch_size: int = Field(default=50, gt=0)

    torch_threads: int | None = Field(default=None, gt=0)
    seed: int = 42

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        toml = _toml_path(getattr(init_settings, "init_kwargs", {}).get("home"))
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        sources.append(file_secret_settings)
        return tuple(sources)

    # Derived paths -------------------------------------------------------------
    @property
    def cache_dir(self) -> Path:
        return self.home / "cache"

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def reports_dir(self) -> Path:
        return self.home / "reports"


def apply_torch_threads(settings: Settings) -> None:
    """Set torch's intra-op thread count, and numpy's BLAS pool (the fusion kernel's products), from
    ``settings.torch_threads`` (no-op when unset). Every entry point that computes with torch calls
    this; torch is imported only then. Two pools of spinning threads on the same cores slow each
    other down (measured: a 25k-item kernel call 22 ms with both, 12 ms with one BLAS thread)."""
    if settings.torch_threads:
        import torch
        from threadpoolctl import threadpool_limits

        torch.set_num_threads(settings.torch_threads)
        threadpool_limits(settings.torch_threads, user_api="blas")
