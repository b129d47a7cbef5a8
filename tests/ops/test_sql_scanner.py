"""Statements split out of SQL text: lines kept, comments and literals unable to fool a rule."""

from __future__ import annotations

from service.ops.sql_scanner import Statement, split_statements


def test_statements_with_their_starting_lines() -> None:
    sql = "-- header\n\nCREATE TABLE a (id int);\nCREATE INDEX a_id\n    ON a (id);\n;\n"
    assert split_statements(sql) == [
        Statement(3, "CREATE TABLE a (id int)"),
        Statement(4, "CREATE INDEX a_id ON a (id)"),
    ]


def test_semicolons_and_keywords_inside_literals_and_comments_are_not_code() -> None:
    sql = (
        "INSERT INTO t VALUES ('a;b', 'it''s; CREATE INDEX', E'\\'; DROP', $$x; y$$);\n"
        "/* outer /* nested; */ still comment; */ SELECT 1; -- trailing; comment\n"
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $fn$ SELECT 1; $fn$;\n"
    )
    assert [s.text for s in split_statements(sql)] == [
        "INSERT INTO t VALUES ('', '', E'', $$)",
        "SELECT 1",
        "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS $$",
    ]


def test_quoted_identifiers_are_kept_and_dollars_in_names_are_not_quotes() -> None:
    sql = 'CREATE INDEX "odd;name" ON "My Table" (a$b$c, $1);'
    assert split_statements(sql) == [
        Statement(1, 'CREATE INDEX "odd;name" ON "My Table" (a$b$c, $1)')
    ]


def test_an_unterminated_literal_swallows_the_rest() -> None:
    assert [s.text for s in split_statements("SELECT 'oops; SELECT 2;")] == ["SELECT ''"]
