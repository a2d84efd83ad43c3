"""The files `python -m framework.new_plugin KIND NAME` copies: one working plugin per kind, registered as
`my_<kind>` (class `My<Kind>`), which the command renames to NAME. Each passes the conformance checks as it
stands; every line the user replaces is marked TODO. Nothing imports these modules."""
