"""The MAS paper's experiments (Aljundi et al., ECCV 2018) on data and networks that install offline.

    python -m benchmarks.paper                    # the default profile, about 45 minutes on 2 cores
    python -m benchmarks.paper --profile full     # 5 seeds and larger subsets, for a GPU machine
    python -m benchmarks.paper --profile smoke --out /tmp/x   # what CI runs (in parts: --no-service, --sequences 1)

Data: Fashion-MNIST and WordNet 3.0 from Debian's packages (data.py), all-MiniLM-L6-v2 and
EfficientNet-Lite0 from PyPI (the `pretrained` extra). Sequences (sequences.py): split Fashion-MNIST on a
CNN from scratch and on EfficientNet-Lite0, WordNet definitions on MiniLM, two-task transfers in both
orders, an 8-task sequence per modality. Methods: fine-tune, LwF, EWC, SI, L2, MAS and MAS with λ "auto",
and Table 3's variants of MAS. Every task is learned by app.mas.learn.learn_task, as a train job learns it
(runner.py); the pretrained networks' frozen blocks are computed once per dataset (tails.py). One
sequence per modality also runs through a real service and is compared with the in-process run
(service.py). Results: benchmarks/results/paper.json, paper.md and paper_*.png (report.py).
"""
