"""lmrec: language-model recommenders as Dagster assets."""
