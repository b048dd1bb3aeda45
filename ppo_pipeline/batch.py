"""The batch: every key of the TensorDict that flows through the stages, in one table.

The collector writes a TensorDict of batch shape [N, T] (N envs, time last; torchrl's layout, so its
GAE and losses read it unchanged); GAE adds two keys; the sampler flattens it and cuts minibatches
[M] (M = minibatch size); the loss reads them. A = action dimension (Box) and n = number of actions
(Discrete); O = the observation's shape (``[4, 84, 84]`` uint8 for Atari; for a ``Dict`` observation space,
``observation`` is a TensorDict of its entries, ``action_mask`` among them when the env masks actions).

===========================  ===============  =========  =================================================
key                          shape            dtype      meaning (paper's symbol)
===========================  ===============  =========  =================================================
``observation``              [N, T, *O]       float32    s_t as the network sees it (normalized; Atari:
                                              / uint8    the stacked frames, scaled inside the CNN)
``action``                   [N, T(, A)]      int64 /    a_t, the raw sample (Box: before clipping to the
                                              float32    bounds the env gets; 37 details, continuous #5)
``action_log_prob``          [N, T]           float32    log pi_theta_old(a_t | s_t)
``logits``                   [N, T, n]        float32    pi_theta_old's parameters (Discrete): the KL
``loc``, ``scale``           [N, T, A]        float32    objectives' pi_old (Box: mean, std)
``state_value``              [N, T, 1]        float32    V(s_t) under theta_old
``hidden``                   [M, width]       float32    the shared trunk's features (written inside the
                                                         loss by the actor, read by the critic)
``features``                 [M, width]       float32    ``--policy lstm``: the encoder's output, the LSTM's
                                                         input (written inside the loss)
``is_init``                  [N, T, 1]        bool       ``--policy lstm``: s_t starts an episode (the LSTM's
                                                         state is reset to 0 there)
``recurrent_state_h``, _c    [N, T, L, H]     float32    ``--policy lstm``: the LSTM's state before step t
                                                         (torchrl's LSTMModule layout; 0 where ``is_init``)
``mask``                     [N, T, n]        bool       masked actions: the allowed actions at s_t (a
                                                         distribution parameter of the masked head)
``("next", "reward")``       [N, T, 1]        float32    r_t as trained on (sign-clipped / scaled)
``("next", "terminated")``   [N, T, 1]        bool       s_{t+1} is terminal (bootstrap 0)
``("next", "truncated")``    [N, T, 1]        bool       a time limit cut the episode after a_t
``("next", "done")``         [N, T, 1]        bool       terminated or truncated (GAE's trace cut)
``("next", "state_value")``  [N, T, 1]        float32    V(s_{t+1}): the bootstrap (V(final obs) on
                                                         truncation, 0 on termination)
``advantage``                [N, T, 1]        float32    A_t, GAE (Eq. 11)
``value_target``             [N, T, 1]        float32    V_t^targ = A_t + V(s_t) (Eq. 9's L^VF target)
``row_weight``               [P, m]           float32    a pack's minibatch over W ranks: this rank's rows
                                                         of it, 1 / M each (0: padding; the sampler's)
===========================  ===============  =========  =================================================
"""

OBSERVATION = "observation"
ACTION = "action"
ACTION_LOG_PROB = "action_log_prob"
STATE_VALUE = "state_value"
HIDDEN = "hidden"
NEXT = "next"
REWARD = "reward"
TERMINATED = "terminated"
TRUNCATED = "truncated"
DONE = "done"
ADVANTAGE = "advantage"
VALUE_TARGET = "value_target"
ROW_WEIGHT = "row_weight"
FEATURES = "features"
IS_INIT = "is_init"
STATE_H = "recurrent_state_h"
STATE_C = "recurrent_state_c"
