from station.cli.main import main

main()
