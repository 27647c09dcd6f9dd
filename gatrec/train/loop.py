"""The training loop: BPR epochs, early stopping on a validation metric, per-epoch checkpoints and resume.

Test metrics are computed only when the validation metric improves, so the reported test result is the
one of the best-validation epoch. A run killed at any point and started again with the same config
continues from its last checkpoint and ends with exactly the metrics of an uninterrupted run (CPU).
"""

from __future__ import annotations

import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from gatrec import log as glog
from gatrec import models
from gatrec import threads as cpu_threads
from gatrec.data.dataset import Dataset
from gatrec.errors import GatrecError
from gatrec.evaluate.ranking import evaluate_dataset
from gatrec.models.base import Recommender, TrainGraph
from gatrec.train import checkpoint
from gatrec.train.allocator import keep_freed_memory
from gatrec.train.config import TrainConfig
from gatrec.train.export import RunFolder, write_export
from gatrec.train.inputs import DatasetInputs
from gatrec.train.sampler import BPRSampler
from gatrec.train.tracker import Tracker

log = glog.get(__name__)


def resolve_device(name: str) -> torch.device:
    """The torch device for a TrainConfig ``device``; one this machine lacks is a GatrecError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (device.index or 0) >= count:
            have = f"{count} CUDA device(s)" if count else "no CUDA device"
            raise GatrecError(f"--device {name}: this machine has {have}; use --device cpu (or auto)")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise GatrecError(f"--device {name}: MPS is not available here; use --device cpu (or auto)")
    return device


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)


def adam(params: Any, lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam as training uses it: torch's fused kernel (the same update in one pass over the parameters, faster
    on CPU: BENCHMARKS.md, Design notes); the default where the device has no fused kernel."""
    params = list(params)
    try:
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
    except RuntimeError:  # e.g. a device or dtype without the fused kernel
        return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)


@torch.no_grad()
def evaluate_model(model: Recommender, ds: Dataset, split: str, config: TrainConfig) -> dict[str, float]:
    model.eval()
    user_emb, item_emb = model.embeddings()
    return evaluate_dataset(user_emb, item_emb, ds, split, item_bias=model.item_bias(),
                            mask_valid=config.mask_valid_at_test, ks=config.ks, stable_ties=model.stable_ties)


def check_run_folder(out: str | Path, config: TrainConfig, *, resume: bool = True, overwrite: bool = False) -> None:
    """Raise GatrecError unless ``out`` is empty, holds a run of this same config, or will be overwritten."""
    old = RunFolder(Path(out)).saved_config()
    if overwrite or old is None:
        return
    if not resume:
        raise GatrecError(f"{out} already holds a run; pass --overwrite to start over")
    new = config.model_dump(mode="json")
    if diff := sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k)):
        changes = "; ".join(f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in diff)
        raise GatrecError(f"{out} holds a run with a different config ({changes}); "
                          "use the same settings to resume, or --overwrite to start over")


def _prepare_out(out: Path, config: TrainConfig, *, resume: bool, overwrite: bool) -> dict[str, Any] | None:
    """Clear, check or load what ``out`` already holds; returns the checkpoint to resume from, if any."""
    check_run_folder(out, config, resume=resume, overwrite=overwrite)
    run = RunFolder(out)
    if removed := run.remove_stale_temps():  # what a killed earlier training left (0-byte checkpoints)
        log.info("stale temp files removed", run=str(out), files=[str(p.relative_to(out)) for p in removed])
    if overwrite:
        run.clear()
        return None
    return checkpoint.load(run.checkpoint_file) if run.checkpoint_file.is_file() else None


def train(data: str | Path | Dataset, config: TrainConfig, out: str | Path, *, resume: bool = True,
          overwrite: bool = False, tracker: Tracker | None = None, threads: int | None = None) -> dict[str, Any]:
    """Train ``config.model`` on the prepared dataset ``data``; write the run folder ``out``; return metrics.

    ``threads`` only changes speed, not results, so it is not part of the config.
    """
    device = resolve_device(config.device)  # before anything is written
    ds = data if isinstance(data, Dataset) else Dataset.load(data)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cpu_threads.configure(threads)
    keep_freed_memory()
    _seed_everything(config.seed)

    graph = TrainGraph.from_dataset(ds, device)
    model = models.get(config.model).build(ds, config.model_hparams(), graph, DatasetInputs(ds)).to(device)
    state = _prepare_out(out, config, resume=resume, overwrite=overwrite)
    if state is not None and state["data_digest"] != ds.digest:
        raise GatrecError(f"{out} was trained on data {state['data_digest']}, not {ds.digest} ({ds.path}); "
                          "use --overwrite to start over")
    RunFolder(out).write_config(config.to_yaml())

    if model.trainable:
        state = _fit(model, ds, config, out, state, device, tracker)
    else:  # fitted when built: one evaluation, no epochs
        state = {"epoch": 0, "history": [], "best": {"epoch": 0, "state": checkpoint.cpu_state_dict(model),
                                                    "valid": evaluate_model(model, ds, "valid", config),
                                                    "test": evaluate_model(model, ds, "test", config)}}
    return _finish(model, ds, config, out, state)


def _fit(model: Recommender, ds: Dataset, config: TrainConfig, out: Path, state: dict[str, Any] | None,
         device: torch.device, tracker: Tracker | None) -> dict[str, Any]:
    optimizer = adam(model.parameters(), config.lr, config.weight_decay)
    sampler = BPRSampler(ds.train["user"].to_numpy(), ds.train["item"].to_numpy(), ds.n_items,
                         config.batch_size, seed=config.seed)
    if state is None:
        state = {"epoch": 0, "best": {"epoch": 0, "score": -math.inf, "state": None, "valid": {}, "test": {}},
                 "history": [], "stopped": False, "data_digest": ds.digest, "config_digest": config.digest()}
    else:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        checkpoint.set_rng_state(state["rng"])
        log.info("resuming", run=str(out), after_epoch=state["epoch"], best_epoch=state["best"]["epoch"])
    best, metric = state["best"], config.metric
    bar = tqdm(range(state["epoch"] + 1, config.epochs + 1), desc=f"train {config.model}", unit="epoch",
               disable=None, initial=state["epoch"], total=config.epochs)
    for epoch in bar:
        if state["stopped"]:
            break
        cpu_threads.rebalance()  # another training may have started or ended: take this one's share
        t0 = time.perf_counter()
        model.train()
        total = torch.zeros((), device=device)
        for users, pos, neg in sampler.epoch(epoch):
            loss, _ = model.loss(users.to(device), pos.to(device), neg.to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(users)
        train_seconds = time.perf_counter() - t0
        entry: dict[str, Any] = {"epoch": epoch, "loss": total.item() / len(sampler.users),
                                 f"valid_{metric}": None}
        valid: dict[str, float] = {}
        if epoch % config.eval_every == 0 or epoch == config.epochs:
            valid = evaluate_model(model, ds, "valid", config)
            entry[f"valid_{metric}"] = valid[metric]
            if valid[metric] > best["score"]:
                best.update(epoch=epoch, score=valid[metric], valid=valid,
                            test=evaluate_model(model, ds, "test", config),
                            state=checkpoint.cpu_state_dict(model))
        entry.update(seconds=time.perf_counter() - t0, train_seconds=train_seconds)
        state["history"].append(entry)
        state["stopped"] = epoch - best["epoch"] >= config.patience
        state["epoch"] = epoch
        state.update(model=checkpoint.cpu_state_dict(model), optimizer=optimizer.state_dict(),
                     rng=checkpoint.rng_state())
        checkpoint.save(RunFolder(out).checkpoint_file, state)
        bar.set_postfix(loss=f"{entry['loss']:.4f}", **{metric: f"{best['score']:.4f}"})
        valid_score = entry[f"valid_{metric}"]
        log.info("epoch", epoch=epoch, loss=round(entry["loss"], 5),
                 **{metric: None if valid_score is None else round(valid_score, 5)},
                 best_epoch=best["epoch"], seconds=round(entry["seconds"], 2))
        if tracker is not None:
            # Every validation metric (the history keeps only the early-stopping one).
            tracker.log_epoch(epoch, {**{k: v for k, v in entry.items() if k != "epoch"},
                                      **{f"valid_{k}": v for k, v in valid.items()}})
        if state["stopped"]:
            log.info("early stop", epoch=epoch, best_epoch=best["epoch"], patience=config.patience)
    bar.close()
    if best["state"] is None:  # epochs=0: nothing was evaluated yet
        best.update(state=checkpoint.cpu_state_dict(model), valid=evaluate_model(model, ds, "valid", config),
                    test=evaluate_model(model, ds, "test", config))
    return state


def _finish(model: Recommender, ds: Dataset, config: TrainConfig, out: Path,
            state: dict[str, Any]) -> dict[str, Any]:
    best = state["best"]
    model.load_state_dict(best["state"])
    model.eval()
    with torch.no_grad():
        user_emb, item_emb = model.embeddings()
        bias = model.item_bias()
    run = RunFolder(out)
    write_export(run.model_dir, model=config.model, user_emb=user_emb.detach().cpu().numpy(),
                 item_emb=item_emb.detach().cpu().numpy(),
                 item_bias=None if bias is None else bias.detach().cpu().numpy(),
                 dataset=ds, extra={"best_epoch": best["epoch"], "config": config.model_dump(mode="json")})
    history = state["history"]
    result = {
        "valid": best["valid"], "test": best["test"], "best_epoch": best["epoch"],
        "epochs_run": state["epoch"],
        "seconds_per_epoch": (sum(h["seconds"] for h in history) / len(history)) if history else None,
        "config": config.model_dump(mode="json"), "model": config.model,
        "data": {"path": str(Path(ds.path).resolve()), "digest": ds.digest, "split_protocol": ds.split_protocol,
                 "n_users": ds.n_users, "n_items": ds.n_items},
        "history": history,
    }
    run.write_metrics(result)
    log.info("done", run=str(out), best_epoch=best["epoch"], **{f"valid_{config.metric}": best["valid"].get(
        config.metric), f"test_{config.metric}": best["test"].get(config.metric)})
    return result
