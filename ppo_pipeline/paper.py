"""The paper's published numbers (Schulman et al. 2017, arXiv 1707.06347v2) that runs are compared with.

* Table 1: normalized score of each surrogate objective / hyperparameter, 7 MuJoCo tasks x 3 seeds,
  1M timesteps (score = mean of the last 100 episodes, random = 0 and best = 1 per task).
* Table 2: number of the 49 Atari games "won" by A2C, ACER and PPO (3 seeds averaged), on
  (1) average episode reward over all of training and (2) over the last 100 episodes.
* Table 6: mean final score (last 100 episodes) after 40M frames (10M timesteps) of A2C, ACER, PPO.
* Figure 4 (Sec. 6.3): learning curves of the Roboschool humanoids with Table 4's settings; no table, so the
  budgets and final returns below are read off the figure's axes and curves (approximate).
"""

from __future__ import annotations

# Table 1's 7 tasks (the paper used the -v1 versions; gymnasium 1.4 has -v5).
TABLE1_TASKS = (
    "HalfCheetah-v5",
    "Hopper-v5",
    "InvertedDoublePendulum-v5",
    "InvertedPendulum-v5",
    "Reacher-v5",
    "Swimmer-v5",
    "Walker2d-v5",
)

# Table 1's rows: (objective, the hyperparameter that tells the row apart, its value, normalized score).
TABLE1 = (
    ("none", None, None, -0.39),
    ("clip", "clip_epsilon", 0.1, 0.76),
    ("clip", "clip_epsilon", 0.2, 0.82),
    ("clip", "clip_epsilon", 0.3, 0.70),
    ("kl_adaptive", "kl_target", 0.003, 0.68),
    ("kl_adaptive", "kl_target", 0.01, 0.74),
    ("kl_adaptive", "kl_target", 0.03, 0.71),
    ("kl_fixed", "kl_beta", 0.3, 0.62),
    ("kl_fixed", "kl_beta", 1.0, 0.71),
    ("kl_fixed", "kl_beta", 3.0, 0.72),
    ("kl_fixed", "kl_beta", 10.0, 0.69),
)

# Table 2: games won; columns A2C, ACER, PPO, tie.
TABLE2 = {"all of training": (1, 18, 30, 0), "last 100 episodes": (1, 28, 19, 1)}

# Table 6: game -> (A2C, ACER, PPO), mean of the last 100 episodes after 40M frames.
TABLE6 = {
    "Alien": (1141.7, 1655.4, 1850.3),
    "Amidar": (380.8, 827.6, 674.6),
    "Assault": (1562.9, 4653.8, 4971.9),
    "Asterix": (3176.3, 6801.2, 4532.5),
    "Asteroids": (1653.3, 2389.3, 2097.5),
    "Atlantis": (729265.3, 1841376.0, 2311815.0),
    "BankHeist": (1095.3, 1177.5, 1280.6),
    "BattleZone": (3080.0, 8983.3, 17366.7),
    "BeamRider": (3031.7, 3863.3, 1590.0),
    "Bowling": (30.1, 33.3, 40.1),
    "Boxing": (17.7, 98.9, 94.6),
    "Breakout": (303.0, 456.4, 274.8),
    "Centipede": (3496.5, 8904.8, 4386.4),
    "ChopperCommand": (1171.7, 5287.7, 3516.3),
    "CrazyClimber": (107770.0, 132461.0, 110202.0),
    "DemonAttack": (6639.1, 38808.3, 11378.4),
    "DoubleDunk": (-16.2, -13.2, -14.9),
    "Enduro": (0.0, 0.0, 758.3),
    "FishingDerby": (20.6, 34.7, 17.8),
    "Freeway": (0.0, 0.0, 32.5),
    "Frostbite": (261.8, 285.6, 314.2),
    "Gopher": (1500.9, 37802.3, 2932.9),
    "Gravitar": (194.0, 225.3, 737.2),
    "IceHockey": (-6.4, -5.9, -4.2),
    "Jamesbond": (52.3, 261.8, 560.7),
    "Kangaroo": (45.3, 50.0, 9928.7),
    "Krull": (8367.4, 7268.4, 7942.3),
    "KungFuMaster": (24900.3, 27599.3, 23310.3),
    "MontezumaRevenge": (0.0, 0.3, 42.0),
    "MsPacman": (1626.9, 2718.5, 2096.5),
    "NameThisGame": (5961.2, 8488.0, 6254.9),
    "Pitfall": (-55.0, -16.9, -32.9),
    "Pong": (19.7, 20.7, 20.7),
    "PrivateEye": (91.3, 182.0, 69.5),
    "Qbert": (10065.7, 15316.6, 14293.3),
    "Riverraid": (7653.5, 9125.1, 8393.6),
    "RoadRunner": (32810.0, 35466.0, 25076.0),
    "Robotank": (2.2, 2.5, 5.5),
    "Seaquest": (1714.3, 1739.5, 1204.5),
    "SpaceInvaders": (744.5, 1213.9, 942.5),
    "StarGunner": (26204.0, 49817.7, 32689.0),
    "Tennis": (-22.2, -17.6, -14.8),
    "TimePilot": (2898.0, 4175.7, 4342.0),
    "Tutankham": (206.8, 280.8, 254.4),
    "UpNDown": (17369.8, 145051.4, 95445.0),
    "Venture": (0.0, 0.0, 0.0),
    "VideoPinball": (19735.9, 156225.6, 37389.0),
    "WizardOfWor": (859.0, 2308.3, 4185.3),
    "Zaxxon": (16.3, 29.0, 5008.7),
}
TABLE6_ALGOS = ("A2C", "ACER", "PPO")


def atari_id(game: str) -> str:
    """Table 6's game name -> gymnasium's id (``Pong`` -> ``ALE/Pong-v5``)."""
    return f"ALE/{game}-v5"


def game_of(env_id: str) -> str | None:
    """gymnasium's id -> Table 6's game name, or None when the game is not in Table 6."""
    name = env_id.removeprefix("ALE/").rsplit("-v", 1)[0].replace("NoFrameskip", "")
    return name if name in TABLE6 else None


def is_table1_task(env_id: str) -> bool:
    """Whether ``env_id`` is one of Table 1's 7 MuJoCo tasks (any version: the paper ran -v1, we run -v5)."""
    return env_id.rsplit("-v", 1)[0] in {t.rsplit("-v", 1)[0] for t in TABLE1_TASKS}


def table1_label(objective: str, param: str | None, value: float | None) -> str:
    """The report's variant label of a Table 1 row (as :func:`ppo_pipeline.report.runs.variant_of` writes it)."""
    short = {"clip_epsilon": "eps", "kl_target": "d_targ", "kl_beta": "beta"}
    return objective if param is None else f"{objective} {short[param]}={value:g}"


TABLE1_BY_LABEL = {table1_label(o, p, v): score for o, p, v, score in TABLE1}


# Figure 4's tasks as their Bullet ports (pybullet-envs-gymnasium 0.6.0; Roboschool no longer installs), and
# MuJoCo's humanoid beside them (not in the figure: the same forward-locomotion task on another simulator).
FIGURE4_TASKS = (
    "HumanoidBulletEnv-v0",
    "HumanoidFlagrunBulletEnv-v0",
    "HumanoidFlagrunHarderBulletEnv-v0",
    "Humanoid-v5",
)
# Per task: Table 4's number of actors, and the budget Figure 4's axis runs to.
FIGURE4_SETTINGS = {
    "HumanoidBulletEnv-v0": {"num_envs": 32, "total_steps": 50_000_000},
    "HumanoidFlagrunBulletEnv-v0": {"num_envs": 128, "total_steps": 100_000_000},
    "HumanoidFlagrunHarderBulletEnv-v0": {"num_envs": 128, "total_steps": 100_000_000},
    "Humanoid-v5": {"num_envs": 32, "total_steps": 50_000_000},
}
