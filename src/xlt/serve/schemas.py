"""The server's request and response bodies (pydantic), which its OpenAPI document (``/docs``, ``/openapi.json``)
describes. Unknown fields are refused, so that a misspelt option is an error and not a silent default."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Routing(BaseModel):
    """What serves an input: a task and a named configuration of an offered matrix (with the target language,
    and optionally the source and seed of its task representation), or an explicit plan of rep names."""

    model_config = ConfigDict(extra="forbid")

    language: str | None = Field(default=None, min_length=1, max_length=40, description="target language code")
    task: str | None = Field(default=None, min_length=1, max_length=200, description="a task of an offered matrix")
    configuration: str | None = Field(default=None, min_length=1, max_length=200, description='e.g. "SLP+TA"')
    plan: str | list[str] | None = Field(
        default=None, description='rep names in order: "sk/prompt+emoji/en/ta/seed42" or a list'
    )
    source: str | None = Field(default=None, min_length=1, max_length=40)
    seed: int | None = None


class PredictInput(Routing):
    text: str = Field(description="the input (a premise for NLI, a context for QA)")
    pair: str | None = Field(default=None, description="the second text: a hypothesis (NLI) or a question (QA)")
    tokens: list[str] | None = Field(default=None, description="a tagging input's words (default: text split)")
    max_new_tokens: int | None = Field(default=None, ge=1, description="generation: the most tokens to generate")


class PredictRequest(Routing):
    """Inputs, and routing fields that apply to every input that does not set its own."""

    inputs: list[PredictInput] = Field(min_length=1)


class Span(BaseModel):
    text: str
    start: int
    end: int
    score: float


class PredictOutput(BaseModel):
    plan: str = Field(description="the plan that served the input")
    language: str | None = None
    task: str | None = None
    configuration: str | None = None
    label: Any = None
    scores: dict[str, float] | None = None
    tokens: list[str] | None = None
    tags: list[str] | None = None
    span: Span | None = None
    text: str | None = None


class PredictResponse(BaseModel):
    model: str
    outputs: list[PredictOutput]


class RepsRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(default_factory=list, max_length=1024, description="offered rep names")
    paths: list[str] = Field(
        default_factory=list, max_length=1024, description="rep directories inside an offered directory"
    )


class RepsResponse(BaseModel):
    loaded: list[str] = Field(default_factory=list)
    unloaded: list[str] = Field(default_factory=list)
    resident: list[dict[str, Any]]
