from tcptune.cli.main import main

raise SystemExit(main())
