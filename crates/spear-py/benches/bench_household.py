#!/usr/bin/env python3
"""Household steps/s through Python: spear_rs's VecEnv for N environments, and (with
--games DIR) the original ALFWorld/TextWorld engine in the same process on the same
game files. Random admissible actions, 50-step episodes.

  spear env generate household --split train --count 64 --seed 0 --out DIR
  python bench_household.py --games DIR --n 1 64 512 [--textworld-n 1 64]

spear_rs loads DIR with its ALFWorld loader (DIR/train/<task>/<trial>/game.tw-pddl), so
both engines play the same files. Without --games, spear_rs generates the same games
itself (generator seed 0) and the original engine is not run.

"env" time counts only the step() calls; "total" also counts the Python policy (a
random admissible command per environment, read from the infos).
"""

import argparse
import glob
import os
import random
import time

import numpy as np


def bench_spear(n, games_dir, num_games, target_steps, seed=0):
    import spear_rs

    e = spear_rs.envs.household(env_num=n, group_n=1, seed=seed, data_dir=games_dir, num_games=num_games)
    rng = np.random.default_rng(seed)
    steps = 0
    env_time = 0.0
    t0 = time.perf_counter()
    while steps < target_steps:
        obs, infos = e.reset()
        while not e.dones.all():
            active = int((~e.dones).sum())
            acts = [i["admissible_commands"][rng.integers(len(i["admissible_commands"]))] for i in infos]
            t = time.perf_counter()
            obs, rewards, dones, infos = e.step(acts)
            env_time += time.perf_counter() - t
            steps += active
    total = time.perf_counter() - t0
    return steps, steps / env_time, steps / total


def bench_textworld(n, files, target_steps, seed=0):
    import textworld
    import textworld.gym
    from alfworld.agents.environment.alfred_tw_env import AlfredDemangler, AlfredInfos

    infos = textworld.EnvInfos(won=True, admissible_commands=True, extras=["gamefile"])
    env_id = textworld.gym.register_games(files, infos, batch_size=n, asynchronous=False, max_episode_steps=50,
                                          wrappers=[AlfredDemangler(shuffle=False), AlfredInfos])
    env = textworld.gym.make(env_id)
    rng = random.Random(seed)
    steps = 0
    env_time = 0.0
    t0 = time.perf_counter()
    while steps < target_steps:
        obs, info = env.reset()
        done = [False] * n
        for _ in range(50):
            acts = [rng.choice(a) for a in info["admissible_commands"]]
            active = n - sum(done)
            t = time.perf_counter()
            obs, _, dones, info = env.step(acts)
            env_time += time.perf_counter() - t
            steps += active
            done = list(dones)
            if all(done) or steps >= target_steps:
                break
    total = time.perf_counter() - t0
    env.close()
    return steps, steps / env_time, steps / total


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--games", help="directory written by `spear env generate household`")
    ap.add_argument("--num-games", type=int, default=64)
    ap.add_argument("--n", type=int, nargs="+", default=[1, 64, 512])
    ap.add_argument("--steps", type=int, default=100_000, help="environment steps per spear_rs measurement")
    ap.add_argument("--textworld-n", type=int, nargs="*", default=[])
    ap.add_argument("--textworld-steps", type=int, default=300)
    a = ap.parse_args()
    print(f"spear_rs household, {a.num_games} games, random admissible actions, 50-step episodes")
    for n in a.n:
        steps, env_sps, total_sps = bench_spear(n, a.games, a.num_games, a.steps)
        print(f"  spear_rs    N={n:4d}: {env_sps:12,.0f} steps/s in step() | {total_sps:12,.0f} steps/s with the policy ({steps} steps)")
    if a.textworld_n:
        files = sorted(glob.glob(os.path.join(a.games, "**", "game.tw-pddl"), recursive=True))[: a.num_games]
        for n in a.textworld_n:
            steps, env_sps, total_sps = bench_textworld(n, files, a.textworld_steps)
            print(f"  textworld   N={n:4d}: {env_sps:12,.1f} steps/s in step() | {total_sps:12,.1f} steps/s with resets and the policy ({steps} steps)")


if __name__ == "__main__":
    main()
