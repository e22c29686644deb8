from cli_app.cli import main

main()
