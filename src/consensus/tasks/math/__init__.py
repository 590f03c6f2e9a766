"""The grade-school-math experiment: data, answer extraction, scorers, feedback forms, evaluation."""
