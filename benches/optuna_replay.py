"""Replays Optuna's samplers and pruner on a recorded table, as benches/search/replay.rs replays
pixelx's: `just bench search` writes the table as JSON and runs this script with the pinned
Optuna in .venv (scripts/setup-optuna.sh), then prints both side by side.

The simulation is the same as pixelx's replay: `parallel` trials in flight, one epoch is one
time unit, all epoch ends at a time are handled in trial-number order (each reported, then
judged by the pruner), then free workers ask for new trials one after another. Optuna asks and
tells through its ask/tell interface with its in-memory storage, so its samplers see running
trials as Optuna's `constant_liar` does.

A configuration already asked for is not trained again: it is answered from the earlier trial
(its intermediate values reported, then told with its state and value; if that trial still runs,
when it finishes), costs no epochs and no worker. With `--count trials` it uses up a trial of the
budget; with `--count distinct` it does not, and the study goes on until `budget` distinct
configurations were trained.

A study whose last `REDRAWS` (64) asks in a row all repeated a configuration asks no more (the
trials running finish), short of its budget: a pixelx study ends by the same rule
(`search::propose::REDRAWS` redraws of a repeat, then "the space holds no configuration not
tried yet" and the study ends, `schedule/study.rs`), so both tools get the same cap. It matters only for
Optuna's univariate TPE asked for every configuration of a small grid, whose Parzen estimators
may keep proposing the few configurations it has already tried (without the cap, 1,200 asks a
seed and about an hour a row); the output counts such studies (`distinct` < budget).

Input (stdin): {"axes": [[name, [values...]], ...], "rows": [[[value per axis], [metric per
epoch]], ...], "parallel": 2, "startup": {"8": 4, ...}, "budgets": [8, ...], "seeds": 500}.
Output (stdout): one JSON line per (sampler, pruner, count, budget):
{"sampler", "pruner", "count", "budget", "runs": [[best, epochs, trials, distinct], ...]}.
"""

import heapq
import json
import sys
import warnings

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

optuna.logging.set_verbosity(optuna.logging.ERROR)
warnings.filterwarnings("ignore")

# Asks in a row that may all repeat a configuration before a study stops (pixelx's REDRAWS).
REDRAWS = 64


def sampler(name, seed, startup):
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed, n_startup_trials=startup, multivariate=(name == "tpe-multivariate")
    )


def pruner(name):
    if name == "sh":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def replay(table, sampler_name, pruner_name, count, budget, seed, startup):
    axes = table["axes"]
    dists = {name: CategoricalDistribution(values) for name, values in axes}
    rows = {tuple(json.dumps(v) for v in params): curve for params, curve in table["rows"]}
    max_epochs = len(table["rows"][0][1])
    study = optuna.create_study(sampler=sampler(sampler_name, seed, startup), pruner=pruner(pruner_name))
    free = table["parallel"]
    now = 0
    events = []  # (time, number)
    running = {}  # number -> (trial, key, start)
    first = {}  # key -> number of the trial that trains it
    outcome = {}  # key -> (state, value, intermediate) once that trial finished
    waiting = {}  # key -> [trials to answer when it finishes]
    trials = distinct = epochs = 0
    since_new = 0  # asks in a row that repeated a configuration
    limit = budget if count == "trials" else None

    def answer(trial, key):
        state, value, intermediate = outcome[key]
        for step, v in intermediate:
            trial.report(v, step)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)

    def finish(number, state, value, epoch):
        nonlocal free
        trial, key, _ = running.pop(number)
        study.tell(trial, value, state=state)
        # What it reported (read back from the study, this deep-copied every trial: most of the
        # replay's time).
        outcome[key] = (state, value, [(e, rows[key][e - 1]) for e in range(1, epoch + 1)])
        for other in waiting.pop(key, []):
            answer(other, key)
        free += 1

    while True:
        while free > 0 and (trials < limit if limit else distinct < budget) and since_new < REDRAWS:
            trial = study.ask(dists)
            trials += 1
            key = tuple(json.dumps(trial.params[name]) for name, _ in axes)
            since_new = 0 if key not in first else since_new + 1
            if key in outcome:
                answer(trial, key)
            elif key in first:
                waiting.setdefault(key, []).append(trial)
            else:
                first[key] = trial.number
                distinct += 1
                running[trial.number] = (trial, key, now)
                heapq.heappush(events, (now + 1, trial.number))
                free -= 1
        if not events:
            break
        now = events[0][0]
        while events and events[0][0] == now:
            _, number = heapq.heappop(events)
            trial, key, start = running[number]
            epoch = now - start
            curve = rows[key]
            epochs += 1
            trial.report(curve[epoch - 1], epoch)
            if epoch == max_epochs:
                finish(number, TrialState.COMPLETE, min(curve), epoch)
            elif trial.should_prune():
                finish(number, TrialState.PRUNED, None, epoch)
            else:
                heapq.heappush(events, (now + 1, number))
    trials_done = study.get_trials(deepcopy=False)
    complete = [t.value for t in trials_done if t.state == TrialState.COMPLETE]
    if complete:
        best = min(complete)
    else:
        best = min(v for t in trials_done for v in t.intermediate_values.values())
    return [best, epochs, trials, distinct]


def main():
    table = json.load(sys.stdin)
    # Samplers to replay, in this order (all three by default): lets a caller split the work.
    samplers = sys.argv[1:] or ["random", "tpe-univariate", "tpe-multivariate"]
    for sampler_name in samplers:
        for pruner_name in ["none", "sh"]:
            for count in ["trials", "distinct"]:
                for budget in table["budgets"]:
                    startup = table["startup"][str(budget)]
                    runs = [
                        replay(table, sampler_name, pruner_name, count, budget, seed, startup)
                        for seed in range(table["seeds"])
                    ]
                    line = {
                        "sampler": sampler_name,
                        "pruner": pruner_name,
                        "count": count,
                        "budget": budget,
                        "runs": runs,
                    }
                    print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
