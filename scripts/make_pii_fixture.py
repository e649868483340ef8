#!/usr/bin/env python3
"""Writes tests/fixtures/pii_sentences.jsonl: synthetic English and Korean call-center
sentences with the personal data in them labeled (character spans and kinds), and look-alikes
that must stay (order, flight, tracking and product numbers, dates, amounts, 16-digit
numbers failing Luhn). Deterministic (seed 9). Every value is made up; card, IBAN and RRN
check digits are computed so that valid ones are valid.

Usage: python3 scripts/make_pii_fixture.py [--out tests/fixtures/pii_sentences.jsonl]
"""

import argparse
import json
import random

R = random.Random(9)

# ---------------------------------------------------------------- check digits


def luhn_digit(body):
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return str((10 - total % 10) % 10)


def luhn_ok(digits):
    return luhn_digit(digits[:-1]) == digits[-1]


def rand_digits(n):
    return "".join(R.choice("0123456789") for _ in range(n))


# ---------------------------------------------------------------- values


def card_number():
    kind = R.choice(["visa", "visa", "mc", "mc2", "amex", "discover", "jcb", "visa19"])
    prefix, length = {
        "visa": ("4", 16),
        "visa19": ("4", 19),
        "mc": ("5" + R.choice("12345"), 16),
        "mc2": (str(R.randint(2221, 2720)), 16),
        "amex": ("3" + R.choice("47"), 15),
        "discover": ("6011", 16),
        "jcb": ("35" + str(R.randint(28, 89)), 16),
    }[kind]
    body = prefix + rand_digits(length - len(prefix) - 1)
    return body + luhn_digit(body)


def group(digits, sizes, sep):
    out, at = [], 0
    for s in sizes:
        out.append(digits[at:at + s])
        at += s
    if at < len(digits):
        out.append(digits[at:])
    return sep.join(out)


def card_text(digits):
    n = len(digits)
    style = R.choice(["space", "dash", "plain", "space", "dash"])
    if style == "plain":
        return digits
    sep = " " if style == "space" else "-"
    if n == 15:
        return group(digits, [4, 6, 5], sep)
    return group(digits, [4, 4, 4, 4, 3][: (n + 3) // 4], sep)


def bad_card_text():
    """16 digits in card groups whose Luhn check fails."""
    d = card_number()[:16]
    while luhn_ok(d):
        d = d[:-1] + str((int(d[-1]) + 1) % 10)
    return card_text(d) if len(d) == 16 else d


def kr_mobile():
    d = "01" + R.choice("0000016789") + rand_digits(8)
    return d


def kr_phone_text():
    kind = R.choice(["mobile"] * 5 + ["seoul", "area", "voip", "intl", "intl"])
    if kind == "mobile":
        d = kr_mobile()
        sep = R.choice(["-", "-", " ", ".", ""])
        return group(d, [3, 4, 4], sep) if sep else d
    if kind == "seoul":
        mid = rand_digits(R.choice([3, 4]))
        text = R.choice(["02-{}-{}", "(02) {}-{}", "02 {} {}", "02){}-{}"]).format(mid, rand_digits(4))
        return text
    if kind == "area":
        area = "0" + R.choice("3456") + R.choice("12345")
        return "{}-{}-{}".format(area, rand_digits(R.choice([3, 4])), rand_digits(4))
    if kind == "voip":
        return "070-{}-{}".format(rand_digits(4), rand_digits(4))
    d = kr_mobile()
    return R.choice(["+82 {} {} {}", "+82-{}-{}-{}", "+82 {}-{}-{}"]).format(d[1:3], d[3:7], d[7:])


def us_phone_text():
    area = str(R.randint(2, 9)) + rand_digits(2)
    exch = str(R.randint(2, 9)) + rand_digits(2)
    line = rand_digits(4)
    fmt = R.choice([
        "({}) {}-{}", "{}-{}-{}", "{}.{}.{}", "+1 ({}) {}-{}", "+1 {} {} {}", "1-{}-{}-{}",
        "+1-{}-{}-{}", "{} {} {}",
    ])
    return fmt.format(area, exch, line)


def intl_phone_text():
    return R.choice([
        "+44 20 {} {}".format(rand_digits(4), rand_digits(4)),
        "+49 30 {}".format(rand_digits(8)),
        "+81 3-{}-{}".format(rand_digits(4), rand_digits(4)),
        "+33 1 {} {} {} {}".format(*(rand_digits(2) for _ in range(4))),
        "+61 2 {} {}".format(rand_digits(4), rand_digits(4)),
    ])


FIRST = ["kim", "lee", "park", "choi", "jung", "john", "mary", "alex", "sam", "jiwoo", "minsu", "seoyeon",
         "david", "emma", "hana", "yuna", "chris", "taylor"]
LAST = ["smith", "jones", "kim", "lee", "park", "brown", "garcia", "han", "oh", "shin"]
DOMAINS = ["gmail.com", "naver.com", "daum.net", "hanmail.net", "kakao.com", "outlook.com", "yahoo.co.kr",
           "mail.example.co.kr", "corp.samsung.example.com", "student.snu.ac.kr", "acme-inc.io", "proton.me",
           "icloud.com", "company.org"]


def email_text():
    f, l = R.choice(FIRST), R.choice(LAST)
    local = R.choice([
        f, f + "." + l, f + "_" + l, f + l + str(R.randint(1, 99)), f[0] + l, f + "+voc", f + "." + l + "+billing",
        f.upper() + "." + l.capitalize(), f + "-" + l + str(R.randint(1970, 2005)),
    ])
    return local + "@" + R.choice(DOMAINS)


def spoken_email_en():
    f, l = R.choice(FIRST), R.choice(LAST)
    host, tld = R.choice([("gmail", "com"), ("yahoo", "com"), ("outlook", "com"), ("naver", "com")])
    local = R.choice([f + l, f + "." + l, f + " dot " + l, f + str(R.randint(1, 99))])
    return "{} at {} dot {}".format(local, host, tld)


def spoken_email_ko():
    f = R.choice(FIRST) + str(R.randint(1, 99))
    host = R.choice(["naver", "gmail", "daum", "kakao"])
    return R.choice(["{} 골뱅이 {} 닷컴", "{} 골뱅이 {} 닷 com", "{}골뱅이{}닷컴"]).format(f, host)


DAYS = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]


def rrn_digits(checksum=True):
    yy = R.randint(0, 99)
    month = R.randint(1, 12)
    day = R.randint(1, DAYS[month - 1])
    g = R.choice("1234" * 3 + "5678")
    body = "%02d%02d%02d%s%s" % (yy, month, day, g, rand_digits(5))
    if checksum:
        w = [2, 3, 4, 5, 6, 7, 8, 9, 2, 3, 4, 5]
        s = sum(int(c) * k for c, k in zip(body, w))
        return body + str((11 - s % 11) % 10)
    return body + rand_digits(1)


def rrn_text():
    d = rrn_digits(checksum=R.random() < 0.6)
    style = R.choice(["dash", "dash", "dash", "plain", "spaced"])
    if style == "dash":
        return d[:6] + "-" + d[6:]
    if style == "spaced":
        return d[:6] + " - " + d[6:]
    return d


IBAN_LAYOUT = {"DE": 18, "GB": None, "FR": 23, "NL": None, "ES": 20, "IT": None}


def iban_text():
    cc = R.choice(["DE", "GB", "FR", "NL", "ES", "IT"])
    if cc == "GB":
        bban = R.choice(["WEST", "NWBK", "BARC", "HSBC"]) + rand_digits(14)
    elif cc == "NL":
        bban = R.choice(["ABNA", "INGB", "RABO"]) + rand_digits(10)
    elif cc == "IT":
        bban = R.choice("ABCDEFGHIJ") + rand_digits(10) + "".join(R.choice("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(12))
    else:
        bban = rand_digits(IBAN_LAYOUT[cc])
    numeric = "".join(str(int(c, 36)) for c in bban + cc + "00")
    check = 98 - int(numeric) % 97
    iban = "%s%02d%s" % (cc, check, bban)
    if R.random() < 0.6:
        return " ".join(iban[i:i + 4] for i in range(0, len(iban), 4))
    return iban


def ssn_text():
    while True:
        area = R.randint(1, 899)
        if area != 666:
            break
    sep = R.choice(["-", "-", "-", " "])
    return "%03d%s%02d%s%04d" % (area, sep, R.randint(1, 99), sep, R.randint(1, 9999))


EN_DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
KO_DIGITS = ["공", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]


def say_en(digits, groups):
    words = []
    for g in groups:
        part = []
        for ch in g:
            w = EN_DIGITS[int(ch)]
            if ch == "0" and R.random() < 0.3:
                w = "oh"
            part.append(w)
        words.append(" ".join(part))
    return R.choice([", ", " ", " "]).join(words)


def say_ko(groups):
    return " ".join("".join(KO_DIGITS[int(c)] for c in g) for g in groups)


def split(d, sizes):
    out, at = [], 0
    for s in sizes:
        out.append(d[at:at + s])
        at += s
    return out


# ---------------------------------------------------------------- look-alikes


def lookalike_en():
    return R.choice([
        lambda: "ORD-%d-%06d" % (R.randint(2019, 2025), R.randint(0, 999999)),
        lambda: "order #%d" % R.randint(10000000, 99999999),
        lambda: "order number %s" % rand_digits(10),
        lambda: "flight %s %d" % (R.choice(["UA", "KE", "OZ", "DL", "AA", "LH"]), R.randint(1, 9999)),
        lambda: "%s%d" % (R.choice(["KE", "OZ", "UA"]), R.randint(10, 999)),
        lambda: "%d-%02d-%02d" % (R.randint(2020, 2026), R.randint(1, 12), R.randint(1, 28)),
        lambda: "%02d/%02d/%d" % (R.randint(1, 12), R.randint(1, 28), R.randint(2020, 2026)),
        lambda: "$%s.%02d" % (format(R.randint(10, 99999), ","), R.randint(0, 99)),
        lambda: "USD %s.00" % format(R.randint(100, 9999999), ","),
        lambda: "tracking 1Z%s%s" % ("".join(R.choice("0123456789ABCDEF") for _ in range(6)), rand_digits(10)),
        lambda: "tracking number 9400 %s %s %s %s %s" % tuple(rand_digits(4) if i < 4 else rand_digits(2) for i in range(5)),
        lambda: bad_card_text(),
        lambda: "ticket %s" % rand_digits(13)[:3] + "-" + rand_digits(10),
        lambda: "case %d" % R.randint(100000, 9999999),
        lambda: "%d:%02d pm" % (R.randint(1, 12), R.randint(0, 59)),
        lambda: "extension %d" % R.randint(100, 9999),
        lambda: "1-800 number",
        lambda: "version 2.14.3",
        lambda: "%d.%d%%" % (R.randint(1, 30), R.randint(0, 9)),
        lambda: "SKU %s" % rand_digits(8),
        lambda: "invoice INV-%s" % rand_digits(9),
        lambda: "%d points" % R.randint(1000, 999999),
    ])()


def lookalike_ko():
    return R.choice([
        lambda: "주문번호 ORD-%d-%06d" % (R.randint(2019, 2025), R.randint(0, 999999)),
        lambda: "주문번호 %d%s" % (R.randint(2019, 2025), rand_digits(8)),
        lambda: "%s %d편" % (R.choice(["KE", "OZ", "7C", "LJ"]), R.randint(1, 9999)),
        lambda: "%d년 %d월 %d일" % (R.randint(2020, 2026), R.randint(1, 12), R.randint(1, 28)),
        lambda: "%d.%02d.%02d" % (R.randint(2020, 2026), R.randint(1, 12), R.randint(1, 28)),
        lambda: "%s원" % format(R.randint(10, 9999) * 100, ","),
        lambda: "₩%s" % format(R.randint(10, 99999) * 100, ","),
        lambda: "운송장 번호 %s" % rand_digits(12),
        lambda: "대표번호 1588-%s" % rand_digits(4),
        lambda: "고객센터 1644-%s" % rand_digits(4),
        lambda: bad_card_text(),
        lambda: "접수번호 %s-%s" % (rand_digits(4), rand_digits(6)),
        lambda: "%d시 %d분" % (R.randint(1, 12), R.randint(0, 59)),
        lambda: "%d개월 할부" % R.randint(2, 36),
        lambda: "쿠폰 코드 %s" % "".join(R.choice("ABCDEFGHJKLMNPQRSTUVWXYZ23456789") for _ in range(10)),
        lambda: "%d포인트" % R.randint(1000, 999999),
    ])()


# ---------------------------------------------------------------- sentences


class Sentence:
    def __init__(self, lang):
        self.lang = lang
        self.text = ""
        self.spans = []

    def add(self, text, kind=None):
        if kind:
            self.spans.append({"start": len(self.text), "end": len(self.text) + len(text), "type": kind})
        self.text += text
        return self


def en_sentence():
    s = Sentence("en")
    kind = R.choice(["CARD"] * 4 + ["PHONE"] * 6 + ["EMAIL"] * 4 + ["IBAN"] * 2 + ["SSN"] * 2
                    + ["SPOKEN"] * 3 + ["LOOK"] * 7)
    look = lambda: lookalike_en()
    if kind == "CARD":
        pre = R.choice(["My card number is ", "Charge it to ", "the card ending, sorry, the full number is ",
                        "I used card ", "Visa "])
        s.add(pre).add(card_text(card_number()), "CARD")
        s.add(R.choice([" and it was declined.", ", expiry 09/27.", " for " + look() + ".", " thanks"]))
    elif kind == "PHONE":
        phone = R.choice([us_phone_text, us_phone_text, kr_phone_text, intl_phone_text])()
        pre = R.choice(["Call me back at ", "my number is ", "You can reach me on ", "Phone: ",
                        "text me at ", "My wife's cell is "])
        s.add(pre).add(phone, "PHONE")
        s.add(R.choice([" after 5.", ", about " + look() + ".", " please.", " or email later", ""]))
    elif kind == "EMAIL":
        if R.random() < 0.25:
            s.add("my email is ").add(spoken_email_en(), "EMAIL").add(" okay")
        else:
            s.add(R.choice(["Send the receipt to ", "email: ", "my address is ", "cc "]))
            s.add(email_text(), "EMAIL")
            s.add(R.choice([".", " regarding " + look(), ", thanks!", " (work)"]))
    elif kind == "IBAN":
        s.add(R.choice(["Refund to IBAN ", "my IBAN is ", "Account "])).add(iban_text(), "IBAN")
        s.add(R.choice([" please.", " BIC DEUTDEFF.", ", amount " + look() + "."]))
    elif kind == "SSN":
        s.add(R.choice(["My social is ", "SSN ", "social security number "])).add(ssn_text(), "SSN")
        s.add(R.choice([".", " for verification", ""]))
    elif kind == "SPOKEN":
        what = R.choice(["card", "phone", "phone", "number"])
        if what == "card":
            d = card_number()[:16] if False else card_number()
            while len(d) != 16:
                d = card_number()
            s.add("it's ").add(say_en(d, split(d, [4, 4, 4, 4])), "CARD").add(" expiring next year")
        elif what == "phone":
            d = str(R.randint(2, 9)) + rand_digits(2) + str(R.randint(2, 9)) + rand_digits(6)
            s.add("call me at ").add(say_en(d, split(d, [3, 3, 4])), "PHONE").add(" tonight")
        else:
            d = str(R.randint(1, 9)) + rand_digits(R.choice([7, 8, 9, 11]))
            s.add("my account number is ").add(say_en(d, [d]), "NUMBER").add(" at the branch")
    else:
        s.add(R.choice(["I was charged for ", "About ", "Regarding ", "My refund for ", "They told me "]))
        s.add(look()).add(R.choice([" and ", " but ", ", also "])).add(look()).add(".")
    if R.random() < 0.3 and kind != "LOOK":
        s.add(" Ref " + look() + ".")
    return s


def ko_sentence():
    s = Sentence("ko")
    kind = R.choice(["CARD"] * 4 + ["PHONE"] * 7 + ["EMAIL"] * 3 + ["RRN"] * 5 + ["SPOKEN"] * 4 + ["LOOK"] * 7)
    look = lambda: lookalike_ko()
    if kind == "CARD":
        s.add(R.choice(["카드 번호는 ", "결제한 카드가 ", "카드번호 "])).add(card_text(card_number()), "CARD")
        s.add(R.choice(["이에요.", "입니다", " 이고 " + look() + " 결제했어요", "로 결제했는데요"]))
    elif kind == "PHONE":
        phone = R.choice([kr_phone_text] * 4 + [us_phone_text])()
        s.add(R.choice(["연락처는 ", "제 번호 ", "휴대폰 ", "전화번호가 ", "집 전화 "])).add(phone, "PHONE")
        s.add(R.choice(["로 연락 주세요", "이에요", "입니다.", " 이고요, " + look() + "에 주문했어요", "번으로 문자 주세요"]))
    elif kind == "EMAIL":
        if R.random() < 0.3:
            s.add("메일은 ").add(spoken_email_ko(), "EMAIL").add(" 이에요")
        else:
            s.add(R.choice(["이메일 ", "메일 주소는 ", "영수증은 "])).add(email_text(), "EMAIL")
            s.add(R.choice(["으로 보내 주세요", "입니다", "로 부탁해요"]))
    elif kind == "RRN":
        s.add(R.choice(["주민등록번호 ", "주민번호는 ", "생년월일 말고 주민번호 "])).add(rrn_text(), "RRN")
        s.add(R.choice(["입니다", "이에요", " 맞아요", " 이고 " + look()]))
    elif kind == "SPOKEN":
        what = R.choice(["phone", "phone", "mixed", "rrn", "number"])
        if what == "phone":
            d = kr_mobile()
            s.add("번호는 ").add(say_ko(split(d, [3, 4, 4])), "PHONE").add(R.choice(["로 연락 주세요", "이에요", " 입니다"]))
        elif what == "mixed":
            d = kr_mobile()
            g = split(d, [3, 4, 4])
            s.add("번호가 ").add("%s %s %s" % (g[0], say_ko([g[1]]), say_ko([g[2]])), "PHONE").add(" 맞아요")
        elif what == "rrn":
            d = rrn_digits()
            s.add("주민번호는 ").add(say_ko(split(d, [6, 7])), "RRN").add(" 입니다")
        else:
            d = str(R.randint(1, 9)) + rand_digits(R.choice([8, 9, 11]))
            while d.startswith("0"):
                d = str(R.randint(1, 9)) + d[1:]
            s.add("계좌번호 ").add(say_ko([d[:3], d[3:6], d[6:]]), "NUMBER").add(" 로 환불해 주세요")
    else:
        s.add(R.choice(["", "어제 ", "지난번 "])).add(look()).add(R.choice([" 건으로 ", " 관련해서 ", ", "]))
        s.add(look()).add(R.choice([" 문의드려요", " 확인 부탁드립니다", " 환불되나요?"]))
    return s


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/pii_sentences.jsonl")
    ap.add_argument("--per-lang", type=int, default=320)
    args = ap.parse_args()
    rows = []
    for lang, make in (("en", en_sentence), ("ko", ko_sentence)):
        for i in range(args.per_lang):
            s = make()
            rows.append({"id": "%s-%04d" % (lang, i), "lang": lang, "text": s.text, "spans": s.spans})
    with open(args.out, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    counts = {}
    for r in rows:
        for sp in r["spans"]:
            counts[sp["type"]] = counts.get(sp["type"], 0) + 1
    clean = sum(1 for r in rows if not r["spans"])
    print("%d sentences (%d with no personal data); spans: %s" % (len(rows), clean, counts))


if __name__ == "__main__":
    main()
