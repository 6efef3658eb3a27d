import torch

# The test problems are tiny: one thread avoids OpenMP overhead and oversubscription
# when the suite shares the machine with other work.
torch.set_num_threads(1)
