"""The hook service: specs (specs.py), the plugin manager (manager.py), the built-in exporter
(exporter.py), running jobs and sweeps (runner.py, service.py), and Harbor's own plugin
point (harbor.py)."""
