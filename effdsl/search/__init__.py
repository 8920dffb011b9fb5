"""Architecture search over spaces written in .eff (``effdsl space``, ``effdsl search``).

A space is a spec whose stage lines write choices; the search samples and mutates its
members, screens them by their analytic cost, scores them with a proxy (short training
or a training-free score) and rewards accuracy against cost as MnasNet does.

May import everything up to :mod:`effdsl.api` (not :mod:`effdsl.reports`, a sibling).
torch, torchvision and scikit-learn are imported only inside the functions that train,
score or load data, so that the space arithmetic and the reports work without them.
"""
