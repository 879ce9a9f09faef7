"""The block, linear and embedding entries: hooks installed once on the base model, reading the active route.

With no route active the hooks return at once and the base model computes exactly what it computes alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedModel

from xlt.hosts.base import BottleneckSite, Host
from xlt.reps.bottleneck import apply_stack, gathered_block
from xlt.reps.bottleneck import gather_signature as block_signature
from xlt.reps.lora import gather_signature as delta_signature
from xlt.reps.lora import gathered_delta
from xlt.routing import Route


def _first(output: Any) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else output


def _replace_first(output: Any, value: torch.Tensor) -> Any:
    return (value, *output[1:]) if isinstance(output, tuple) else value


class Runtime:
    def __init__(self, base: PreTrainedModel, host: Host) -> None:
        self.base = base
        self.host = host
        self.route: Route | None = None
        self._residuals: dict[str, torch.Tensor] = {}
        self._sites: list[BottleneckSite] | None = None
        self._linears: set[str] = set()
        self._embeddings = False
        self._handles: list[Any] = []

    @contextmanager
    def active(self, route: Route) -> Iterator[Route]:
        previous, self.route = self.route, route
        try:
            yield route
        finally:
            self.route = previous
            self._residuals.clear()

    # installation -------------------------------------------------------------------------------------
    def install_sites(self) -> None:
        if self._sites is not None:
            return
        self._sites = self.host.bottleneck_sites(self.base)
        for site in self._sites:
            self._handles.append(
                site.residual_module.register_forward_pre_hook(self._residual_hook(site), with_kwargs=True)
            )
            self._handles.append(site.output_module.register_forward_hook(self._site_hook(site)))

    def install_linears(self, targets: dict[str, nn.Module]) -> None:
        for key, module in targets.items():
            if key not in self._linears:
                self._linears.add(key)
                self._handles.append(module.register_forward_hook(self._linear_hook(key)))

    def install_embeddings(self) -> None:
        if self._embeddings:
            return
        self._embeddings = True
        embeddings = self.host.embedding_output(self.base)
        self._handles.append(embeddings.register_forward_hook(self._invertible_hook))
        head = self.base.get_output_embeddings()
        if head is not None:
            self._handles.append(head.register_forward_pre_hook(self._reverse_hook))

    # hooks --------------------------------------------------------------------------------------------
    def _residual_hook(self, site: BottleneckSite) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            if self.route is not None and self.route.stack:
                self._residuals[site.key] = site.residual(args, kwargs)

        return hook

    def _site_hook(self, site: BottleneckSite) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
            route = self.route
            if route is None or not route.stack:
                return None
            inp = self._residuals.pop(site.key)
            h = _first(output)
            for depth in route.stack:
                new = h
                present = [(rep.body.blocks[site.key], rows) for rep, rows in depth if site.key in rep.body.blocks]
                gathered, alone = route.partition(present, block_signature, h)
                for blocks, index, which in gathered:
                    new = new.index_copy(0, index, gathered_block(h[index], inp[index], site.layer_norm, blocks, which))
                for block, rows in alone:
                    if rows is None:
                        new = apply_stack(h, inp, site.layer_norm, [block])
                    else:
                        r = route.expand(rows, h.shape[0])
                        new = new.index_copy(0, r, apply_stack(h[r], inp[r], site.layer_norm, [block]))
                h = new
            return _replace_first(output, h)

        return hook

    def _linear_hook(self, key: str) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
            route = self.route
            if route is None or not route.loras:
                return None
            x = args[0]
            for layer in route.lora_layers:
                present = [(rep.body.deltas[key], rows) for rep, rows in layer if key in rep.body.deltas]
                gathered, alone = route.partition(present, delta_signature, x)
                for deltas, index, which in gathered:
                    output = output.index_add(0, index, gathered_delta(deltas, x[index], which).to(output.dtype))
                for delta, rows in alone:
                    if rows is None:
                        output = output + delta(x).to(output.dtype)
                    else:
                        r = route.expand(rows, x.shape[0])
                        output = output.index_add(0, r, delta(x[r]).to(output.dtype))
            return output

        return hook

    def _couple(self, h: torch.Tensor, reverse: bool) -> torch.Tensor:
        route = self.route
        assert route is not None
        out = h
        for rep, rows in route.invertible:
            coupling = rep.body.invertible
            if rows is None:
                out = coupling(h, reverse=reverse)
            else:
                r = route.expand(rows, h.shape[0])
                out = out.index_copy(0, r, coupling(h[r], reverse=reverse))
        return out

    def _invertible_hook(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> Any:
        if self.route is None or not self.route.invertible:
            return None
        return self._couple(output, reverse=False)

    def _reverse_hook(self, module: nn.Module, args: tuple[Any, ...]) -> Any:
        if self.route is None or not self.route.invertible:
            return None
        return (self._couple(args[0], reverse=True), *args[1:])
