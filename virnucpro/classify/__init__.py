"""Running the classifier on features, and the original's two output files."""

from virnucpro.classify.outputs import (  # noqa: F401
    read_predictions,
    write_highestscore,
    write_prediction_results,
)
