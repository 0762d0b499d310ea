"""Actions: the only commands aiops can ever run, declared in the runbooks folder's `actions.yml`.

`catalog` reads and validates that file and renders one action into an argv for one alert; running it is the
executor's job (`aiops.ssh`).
"""
