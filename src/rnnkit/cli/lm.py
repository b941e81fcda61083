"""`rnnkit train lm`, `rnnkit evaluate` and `rnnkit generate`: parse, call the library, print."""

from __future__ import annotations

import sys

from .runs import add_run_flags, interrupted_status, flag_overrides, json_text, printer, resolve_run

# Friendly flags of `train lm` and the config keys they set.
_TRAIN_FLAGS = {
    "corpus": "data.corpus", "cell": "model.cell", "hidden": "model.hidden_size",
    "layers": "model.layers", "dropout": "model.dropout", "embedding": "model.embedding_dim",
    "batch_size": "data.batch_size", "window": "data.window", "lr": "train.learning_rate",
    "minutes": "train.minutes", "steps": "train.max_steps", "seed": "train.seed",
    "device": "train.device",
}


def add_train_lm(train_commands) -> None:
    parser = train_commands.add_parser(
        "lm", help="train a character language model (default: King James Bible, 10 minutes)",
        description="Train a character-level language model on the built-in King James Bible "
                    "or any UTF-8 text file or folder; prints test bits per character beside "
                    "compressors and a generated sample. Settings: the flags below, a --config "
                    "file (JSON/TOML) and --set key=value overrides (e.g. --set "
                    "train.eval_every=100); the resolved config is saved with each checkpoint.",
    )
    parser.add_argument("--corpus", help="'kjv' (built in, the default) or a UTF-8 file/folder")
    parser.add_argument("--cell", choices=("lstm", "gru", "rnn"))
    parser.add_argument("--hidden", type=int, help="hidden size H")
    parser.add_argument("--layers", type=int, help="stacked recurrent layers")
    parser.add_argument("--dropout", type=float)
    parser.add_argument("--embedding", type=int, help="embedding size E")
    parser.add_argument("--batch-size", type=int, help="parallel rows of text B")
    parser.add_argument("--window", type=int, help="truncated-BPTT length T")
    parser.add_argument("--lr", type=float, help="peak learning rate")
    parser.add_argument("--minutes", type=float, help="training time budget (default 10)")
    parser.add_argument("--steps", type=int, help="optimizer steps (without --minutes, the only limit)")
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--sample-length", type=int, default=400,
                        help="characters of the sample printed at the end (0: none)")
    add_run_flags(parser, "lm")
    parser.set_defaults(handler=run_train_lm)


def _overrides(args) -> list[str]:
    # --steps alone: train exactly that many steps; --minutes alone: for that long (so that
    # --resume --minutes M also gives more time to a run that was limited by steps)
    rules = []
    if args.steps is not None and args.minutes is None:
        rules.append("train.minutes=null")
    if args.minutes is not None and args.steps is None:
        rules.append("train.max_steps=null")
    return flag_overrides(args, _TRAIN_FLAGS, rules)


def run_train_lm(args) -> int:
    from rnnkit.tasks.lm.generate import generate
    from rnnkit.tasks.lm.task import LMConfig, compressor_bars, load_lm, train_lm

    if args.sample_length < 0:  # it was read as 0, no sample, without a word
        raise ValueError(f"--sample-length must be >= 0 (0: no sample); got {args.sample_length}")
    say = printer(args)
    config, run_dir = resolve_run(args, LMConfig, "lm", _overrides(args))
    config.train.check()
    result = train_lm(config, run_dir, resume=bool(args.resume), notify=say)
    if result["status"] == "interrupted":  # saved; the trainer said how to continue
        if args.json:
            print(json_text(result))
        return interrupted_status(result)
    bars = compressor_bars(_corpus_text(config.data.corpus))
    result["compressors_bpc"] = bars
    test = result["test"]
    say(f"\ntest: {test['bpc']:.3f} bits per character (perplexity {test['perplexity']:.2f}) on "
        f"{test['characters']:,} unseen characters")
    if "dynamic" in test:
        settings = test["dynamic"]["dynamic"]
        say(f"test with dynamic evaluation: {test['dynamic']['bpc']:.3f} bits per character "
            f"(the model keeps learning from the text it has scored, as the compressors do; "
            f"{settings['rule']} lr {settings['lr']:g}, rows {settings['rows']})")
    say("  bars on the whole corpus: " + ", ".join(f"{k} {v:.2f}" for k, v in bars.items()))
    validation = result["validation"] or {}
    say(f"  best validation {validation.get('bpc', float('nan')):.3f} bpc at step "
        f"{result['best_step']}; {result['status']} after {result['steps']} steps, "
        f"{result['epochs']:.2f} epochs, {result['train_seconds'] / 60:.1f} min")
    curves = f"  (curves: {result['curves']})" if result.get("curves") else ""
    say(f"  checkpoint {result['checkpoint']}{curves}")
    if args.sample_length > 0:
        loaded = load_lm(run_dir)
        # a paragraph start, or any character the model knows for a text without newlines
        prompt = "\n" if "\n" in loaded.vocabulary else loaded.vocabulary.to_list()[0]
        # Nucleus sampling (top-p 0.9): a short run's distribution after a paragraph start is
        # flat, and one draw from its long tail (p ~ 0.002) could derail the whole sample
        # into noise (seen after a 6-minute run whose CPU was shared).
        say(f"\nsample (temperature 0.8, top-p 0.9, seed {config.train.seed}):")
        pieces = []
        for piece in generate(loaded, prompt, length=args.sample_length, temperature=0.8,
                              top_p=0.9, seed=config.train.seed):
            pieces.append(piece)
            if not args.json:
                print(piece, end="", flush=True)
        if not args.json:
            print()
        result["sample"] = "".join(pieces)
    if args.json:
        print(json_text(result))
    return 0


def _corpus_text(name: str) -> str:
    from rnnkit.data.text import load_corpus

    return load_corpus(name).text


def add_evaluate(commands) -> None:
    parser = commands.add_parser(
        "evaluate", help="bits per character of a trained language model",
        description="Score a checkpoint on the test split of its corpus (or another corpus "
                    "or split): bits per character and perplexity.",
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR",
                        help="a run folder (--out of rnnkit train lm) or one of its checkpoints")
    parser.add_argument("--corpus", help="score on this corpus instead of the training one")
    parser.add_argument("--split", choices=("test", "validation", "train"), default="test")
    parser.add_argument("--which", choices=("best", "last"), default="best",
                        help="which checkpoint of a run folder (default: best)")
    parser.add_argument("--dynamic", action="store_true",
                        help="also score with dynamic evaluation: the model takes an update "
                             "step on each window after scoring it (like an adaptive "
                             "compressor), with the checkpoint's dynamic.* settings; the "
                             "static score is still printed")
    parser.add_argument("--dynamic-lr", type=float, metavar="LR",
                        help="dynamic evaluation with this step size instead of the saved one "
                             "(implies --dynamic)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_evaluate)


def _flag_named(error: ValueError, flags: dict[str, str]) -> ValueError:
    """``error`` of the Python API, whose message starts with a parameter's name (top_k, ...),
    with that name replaced by the command's flag (--top-k); other errors as they are."""
    text = str(error)
    name, _, rest = text.partition(" ")
    if name not in flags:
        return error
    rest = rest.replace("(or None to keep every token)", "(or leave it out to keep every token)")
    return ValueError(f"{flags[name]} {rest}")


#: the Python names of generate's and evaluate's settings, by the flags that give them
_GENERATE_FLAGS = {"length": "--length", "temperature": "--temperature", "top_k": "--top-k",
                   "top_p": "--top-p", "beam_width": "--beam"}
_EVALUATE_FLAGS = {"dynamic.lr": "--dynamic-lr"}


def run_evaluate(args) -> int:
    from rnnkit.tasks.lm.task import DynamicConfig, evaluate_lm

    if args.dynamic_lr is not None:  # the flag's own words, before evaluate_lm checks it too
        try:
            DynamicConfig(lr=args.dynamic_lr).check()
        except ValueError as error:
            raise _flag_named(error, _EVALUATE_FLAGS) from None
    result = evaluate_lm(args.checkpoint, corpus=args.corpus, split=args.split, which=args.which,
                         dynamic=args.dynamic, dynamic_lr=args.dynamic_lr)
    if args.json:
        print(json_text(result))
    else:
        print(f"{result['split']}: {result['bpc']:.4f} bits per character (perplexity "
              f"{result['perplexity']:.3f}) on {result['characters']:,} characters of "
              f"{result['corpus']}; checkpoint {result['checkpoint']} (step {result['step']})")
        if result["unknown_characters"]:
            print(f"  {result['unknown_characters']:,} characters outside the model's vocabulary "
                  f"were skipped, not scored")
        if "dynamic" in result:
            settings = result["dynamic"]["dynamic"]
            print(f"{result['split']} with dynamic evaluation ({settings['rule']} lr "
                  f"{settings['lr']:g}, rows {settings['rows']}): "
                  f"{result['dynamic']['bpc']:.4f} bits per character")
    return 0


def add_generate(commands) -> None:
    parser = commands.add_parser(
        "generate", help="generate text from a trained language model",
        description="Continue a prompt with a trained character model, streaming characters "
                    "as they come (sampling), or print the most probable continuation (--beam).",
    )
    parser.add_argument("--checkpoint", required=True, metavar="DIR")
    parser.add_argument("--prompt", default="", help="text to continue (default: a new line)")
    parser.add_argument("--length", type=int, default=300, help="characters to generate")
    parser.add_argument("--temperature", type=float,
                        help="sampling temperature (default 0.8); 0 means greedy")
    parser.add_argument("--top-k", type=int, help="sample among the k most probable")
    parser.add_argument("--top-p", type=float, help="sample within the nucleus of mass p")
    parser.add_argument("--seed", type=int, help="make sampling repeatable")
    parser.add_argument("--beam", type=int, metavar="WIDTH", help="beam search of this width")
    parser.add_argument("--unknown", choices=("error", "skip"), default="error",
                        help="prompt characters the model never saw: fail (default) or drop")
    parser.add_argument("--which", choices=("best", "last"), default="best")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(handler=run_generate)


def run_generate(args) -> int:
    from rnnkit.tasks.lm.generate import generate, generate_beam, prompt_as_read
    from rnnkit.tasks.lm.task import load_lm

    if args.beam is not None and any(option is not None for option in (
            args.top_k, args.top_p, args.temperature, args.seed)):
        raise ValueError("--beam searches for the most probable text, with no randomness; drop "
                         "--top-k/--top-p/--temperature/--seed")
    loaded = load_lm(args.checkpoint, which=args.which)
    # show (and report) the prompt the model continues, not the one typed
    prompt = prompt_as_read(loaded.vocabulary, args.prompt)
    dropped = loaded.vocabulary.unknown_characters(prompt) if args.unknown == "skip" else []
    if dropped:
        kept = "".join(character for character in prompt if character not in dropped)
        # with nothing left the model continues a new line, as for no prompt: say so
        left = ("; nothing is left, so it continues a new line as with no prompt"
                if not kept and "\n" in loaded.vocabulary else "")
        print(f"dropped {len(prompt) - len(kept)} character(s) the model never saw from the "
              f"prompt: {''.join(dropped)!r}{left}", file=sys.stderr)
        prompt = kept
    # an empty prompt continues a newline (encode_prompt); that is the prompt JSON reports
    continued = prompt if prompt or "\n" not in loaded.vocabulary else "\n"
    try:
        # both check their settings before generating anything
        if args.beam is not None:
            text = generate_beam(loaded, prompt, length=args.length, beam_width=args.beam,
                                 unknown=args.unknown)
        else:
            temperature = 0.8 if args.temperature is None else args.temperature
            stream = generate(loaded, prompt, length=args.length, temperature=temperature,
                              top_k=args.top_k, top_p=args.top_p, seed=args.seed,
                              unknown=args.unknown)
    except ValueError as error:
        raise _flag_named(error, _GENERATE_FLAGS) from None
    if args.beam is not None:
        if not args.json:
            print(prompt + text)
    else:
        pieces = []
        if not args.json:
            print(prompt, end="", flush=True)
        for piece in stream:
            pieces.append(piece)
            if not args.json:
                print(piece, end="", flush=True)
        if not args.json:
            print()
        text = "".join(pieces)
    if args.json:
        print(json_text({"checkpoint": str(loaded.checkpoint), "prompt": continued,
                         "dropped_characters": "".join(dropped),
                         "text": text, "seed": args.seed, "beam": args.beam,
                         "temperature": None if args.beam is not None else temperature}))
    return 0


def add_train(commands) -> None:
    parser = commands.add_parser("train", help="train a model for a task (lm)",
                                 description="Train a model for one of rnnkit's tasks.")
    tasks = parser.add_subparsers(title="tasks", metavar="TASK")
    add_train_lm(tasks)
    parser.set_defaults(handler=lambda args: (parser.print_help(sys.stderr), 2)[1])

