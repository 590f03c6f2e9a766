"""Scale-out: scorers as Ray actors (``ray_scorers``). Ray is an optional extra, imported only here."""
