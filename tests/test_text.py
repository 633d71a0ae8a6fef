from kamml.text import counted


def test_counted_is_singular_for_one_only_and_groups_thousands():
    assert [counted(n, "account") for n in (0, 1, 2, 5000)] == [
        "0 accounts",
        "1 account",
        "2 accounts",
        "5,000 accounts",
    ]


def test_counted_pluralises_the_last_word_of_a_phrase():
    assert counted(3, "test account") == "3 test accounts"
    assert counted(1, "earlier snapshot") == "1 earlier snapshot"
