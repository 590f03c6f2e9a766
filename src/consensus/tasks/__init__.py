"""The four experiments, each as the same parts: data, experiment, report, cli."""
