from nqs_cli.app.cli import main

main()
