"""The safe expression language and templates: what they accept, compute and refuse."""

from __future__ import annotations

import pytest

from fsm_voice.conversation.language.expr import (
    ExprError,
    compile_expr,
    render_template,
    template_names,
)

VARS = {"digits": "42", "rating": "two", "attempt": 2, "caller": "+15550100", "none": None}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1 + 2 * 3", 7),
        ("-attempt + 10", 8),
        ("7 // 2 + 7 % 2 + 1 / 2", 4.5),
        ("digits == '42'", True),
        ("int(digits) >= 40 and int(digits) < 50", True),
        ("1 < attempt < 3", True),
        ("rating in ('one', 'two')", True),
        ("rating not in ['one', 'two']", False),
        ("'55' in caller", True),
        ("len(caller) == 9", True),
        ("not attempt or 'x'", "x"),
        ("attempt and 'yes'", "yes"),
        ("'a' + str(attempt)", "a2"),
        ("lower('HeLLo')", "hello"),
        ("'many' if attempt > 1 else 'one'", "many"),
        ("none == None", True),
        ("str(none)", ""),
    ],
)
def test_expressions_evaluate_like_python(text: str, expected: object) -> None:
    assert compile_expr(text).evaluate(VARS) == expected


def test_names_are_the_variables_read_not_the_functions_called() -> None:
    expr = compile_expr("len(caller) > attempt and int(digits) in (1, 2)")
    assert expr.names == {"caller", "attempt", "digits"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("caller.real", "attribute access not allowed ('caller.real')"),
        ("caller.upper()", "call 'caller.upper()' not allowed"),
        ("__import__('os')", "call \"__import__('os')\" not allowed"),
        ("open('/etc/passwd')", "call \"open('/etc/passwd')\" not allowed"),
        ("digits[0]", "subscripts not allowed"),
        ("lambda: 1", "lambda not allowed"),
        ("[x for x in digits]", "comprehensions not allowed"),
        ("2 ** 100000", "the ** operator not allowed"),
        ("attempt is None", "'is' (use ==) not allowed"),
        ("(x := 1)", "assignment (:=) not allowed"),
        ("{'a': 1}", "dict displays not allowed"),
        ("f'{caller}'", "f-strings not allowed"),
        ("len(caller, 2)", "call 'len(caller, 2)' not allowed"),
        ("attempt +", "cannot parse"),
        ("a = 1", "cannot parse"),
    ],
)
def test_disallowed_syntax_is_rejected_at_compile_time(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        compile_expr(text)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("missing + 1", "unknown variable 'missing'"),
        ("'ab' * 1000000000", "mult of str and int"),
        ("caller - 1", "sub of str and int"),
        ("attempt / 0", "division by zero"),
        ("int(rating)", "int() of 'two': not a number"),
        ("attempt in 5", "'in' needs a string or a list, not int"),
        ("caller < 3", "not supported"),
    ],
)
def test_evaluation_errors_name_the_problem(text: str, message: str) -> None:
    expr = compile_expr(text)
    with pytest.raises(ExprError) as info:
        expr.evaluate(VARS)
    assert message in str(info.value)
    assert repr(text) in str(info.value)


def test_and_or_short_circuit_so_guards_work() -> None:
    # The right side would fail (unknown variable) if it were evaluated.
    assert compile_expr("attempt > 5 and missing").evaluate(VARS) is False
    assert compile_expr("attempt or missing").evaluate(VARS) == 2


def test_templates_fill_fields_and_keep_escaped_braces() -> None:
    text = "Hi {caller}, attempt {attempt}{none} {{literal}}"
    assert render_template(text, VARS) == "Hi +15550100, attempt 2 {literal}"
    assert template_names(text) == {"caller", "attempt", "none"}
    assert template_names("no fields, {{just}} braces") == frozenset()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("Hi {name}", "unknown variable 'name'"),
        ("Hi {caller.upper}", "{caller.upper} is not a variable name"),
        ("Hi {0}", "{0} is not a variable name"),
        ("Hi {caller", "single '{' (write {{)"),
        ("Hi }", "single '}' (write }})"),
    ],
)
def test_bad_templates_are_rejected(text: str, message: str) -> None:
    with pytest.raises(ExprError) as info:
        render_template(text, VARS)
    assert message in str(info.value)
