from bridge.simulator.cli import main

raise SystemExit(main())
