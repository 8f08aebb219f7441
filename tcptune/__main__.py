from tcptune.cli import main

raise SystemExit(main())
