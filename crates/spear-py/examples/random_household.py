#!/usr/bin/env python3
"""A random policy over 512 household environments (64 tasks × 8 copies) from Python.

Usage: python random_household.py [--env-num 64 --group-n 8 --episodes 3 --seed 0]

Each episode: reset (a GRPO group of 8 copies per task), then every step picks a random
admissible command per environment until all are done (won or 50 steps). Prints the
success rate and environment steps/s (the policy's time included).
"""

import argparse
import time

import numpy as np

import spear_rs


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--env-num", type=int, default=64)
    ap.add_argument("--group-n", type=int, default=8)
    ap.add_argument("--episodes", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()

    envs = spear_rs.envs.household(env_num=a.env_num, group_n=a.group_n, seed=a.seed, num_games=512)
    rng = np.random.default_rng(a.seed)
    steps = 0
    t0 = time.perf_counter()
    for episode in range(a.episodes):
        obs, infos = envs.reset()
        won = np.zeros(len(envs), dtype=bool)
        while not envs.dones.all():
            active = int((~envs.dones).sum())  # finished environments are not stepped
            actions = [i["admissible_commands"][rng.integers(len(i["admissible_commands"]))] for i in infos]
            obs, rewards, dones, infos = envs.step(actions)
            won |= rewards > 0
            steps += active
        print(f"episode {episode}: {won.mean():.1%} of {len(envs)} environments won")
    dt = time.perf_counter() - t0
    print(f"{steps} environment steps in {dt:.2f} s: {steps / dt:,.0f} steps/s")


if __name__ == "__main__":
    main()
