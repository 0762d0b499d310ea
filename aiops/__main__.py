from aiops.cli import main

raise SystemExit(main())
