"""Forms turning the new-conversion page's input into clean values.

The option fields are not written here: they are generated from the options the API declares
(GET /v2/convert/formats?include=options), so a new converter option appears without a change."""

from datetime import date, datetime, time, timedelta

from django import forms
from django.db.models import QuerySet
from django.utils import timezone

from conversions.catalogue import Catalogue, input_format_of
from conversions.models import Membership
from conversions.retention import MAX_DAYS as RETENTION_MAX_DAYS

# Words for option names the API only gives as identifiers.
OPTION_HELP = {
    "pages": ("Pages", "For example 1-3,5. Leave empty for all pages."),
    "pixel_density": ("Resolution (DPI)", "How finely PDF pages are rendered as images."),
    "quality": ("Quality", "1–100: lower makes smaller files."),
    "width": ("Width (pixels)", "Leave empty to keep the size."),
    "height": ("Height (pixels)", "Leave empty to keep the size."),
    "fit": ("Fit", "How the image fits into width × height."),
}
# Values no conversion accepts, checked on the form: the API's listing of options gives no
# bounds, and without JavaScript the input format is unknown when the job is created, so the API
# could only refuse them once the file has arrived — as a failed job. (The API still checks the
# exact bounds of each conversion.)
OPTION_BOUNDS = {
    "quality": (1, 100),
    "width": (1, None),
    "height": (1, None),
    "pixel_density": (1, None),
}
OPTION_PREFIX = "option_"


def option_label(name: str) -> str:
    return OPTION_HELP.get(name, (name.replace("_", " ").capitalize(), ""))[0]


def option_field(option: dict) -> forms.Field:
    label, help_text = option_label(option["name"]), OPTION_HELP.get(option["name"], ("", ""))[1]
    default = option.get("default")
    if default not in (None, ""):
        help_text = f"{help_text} Default: {default}.".strip()
    common = {"label": label, "help_text": help_text, "required": False}
    kind = option.get("type")
    if option.get("possible_values"):
        choices = [("", "Default")] + [(str(v), str(v)) for v in option["possible_values"]]
        return forms.ChoiceField(choices=choices, **common)
    if kind in ("integer", "float"):
        low, high = OPTION_BOUNDS.get(option["name"], (None, None))
        field_class = forms.IntegerField if kind == "integer" else forms.FloatField
        return field_class(
            min_value=low,
            max_value=high,
            error_messages={
                "min_value": f"{label} must be at least %(limit_value)s.",
                "max_value": f"{label} must be at most %(limit_value)s.",
            },
            **common,
        )
    if kind == "boolean":
        return forms.NullBooleanField(
            widget=forms.Select(choices=[("", "Default"), ("true", "Yes"), ("false", "No")]), **common
        )
    return forms.CharField(max_length=500, **common)


def team_field(teams: QuerySet, *, label: str) -> forms.ModelChoiceField:
    return forms.ModelChoiceField(
        queryset=teams,
        required=False,
        empty_label="Only me",
        to_field_name="uuid",
        label=label,
        help_text="Members of the team see the conversion and download its files.",
    )


class ShareForm(forms.Form):
    """Which of the owner's teams sees a job, if any."""

    def __init__(self, *args: object, teams: QuerySet, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["team"] = team_field(teams, label="Shared with")


class ConvertForm(forms.Form):
    """What to convert, to what, and how. The file itself never comes here."""

    output_format = forms.ChoiceField(label="Convert to")
    filename = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)
    source_url = forms.URLField(
        required=False,
        max_length=2000,
        label="Or import from a URL",
        help_text="The conversion service downloads the file from this address.",
        assume_scheme="https",
    )
    notify_by_email = forms.BooleanField(required=False, label="E-mail me when it is done")
    save_preset_as = forms.CharField(
        required=False, max_length=80, label="Save these settings as a preset named",
    )

    def __init__(self, *args: object, catalogue: Catalogue, teams: QuerySet | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.catalogue = catalogue
        if teams is not None and teams.exists():
            self.fields["team"] = team_field(teams, label="Share with")
        self.fields["output_format"].choices = catalogue.output_choices()
        for option in catalogue.all_options():
            field = option_field(option)
            self.fields[OPTION_PREFIX + option["name"]] = field

    def option_fields(self) -> list[tuple[str, forms.BoundField]]:
        """(option name, field) pairs; convert.js shows those the chosen conversion declares."""
        return [(name.removeprefix(OPTION_PREFIX), self[name]) for name in self.fields if name.startswith(OPTION_PREFIX)]

    def input_format(self) -> str:
        data = self.cleaned_data
        return input_format_of(data.get("filename") or data.get("source_url") or "")

    def clean(self) -> dict:
        data = super().clean()
        output = data.get("output_format")
        input_format = self.input_format()
        # A URL's "extension" may be anything (.php, .aspx): only a known input format is checked.
        from_url = not data.get("filename")
        if output and input_format and not (from_url and not self.catalogue.knows_input(input_format)):
            if not self.catalogue.converts(input_format, output):
                raise forms.ValidationError(
                    f"{input_format.upper()} files cannot be converted to {output.upper()}. Choose another format."
                )
        return data

    def add_option_errors(self, errors: dict[str, list[str]], sentence: str) -> None:
        """What the API said of the options, under the fields it concerns, worded with their
        labels ("quality must be…" → "Quality must be…"); the rest, or the sentence, above."""
        placed = False
        for name, messages in errors.items():
            field = OPTION_PREFIX + name if OPTION_PREFIX + name in self.fields else None
            for message in messages:
                if field and message.startswith(name):
                    message = option_label(name) + message[len(name):]
                self.add_error(field, message)
                placed = True
        if not placed:
            self.add_error(None, sentence)

    def options(self) -> dict:
        """The options the user set that this conversion declares, as the convert task takes them."""
        input_format = self.input_format() if self.catalogue.knows_input(self.input_format()) else ""
        declared = {o["name"] for o in self.catalogue.options_for(input_format, self.cleaned_data["output_format"])}
        chosen = {}
        for name in declared:
            value = self.cleaned_data.get(OPTION_PREFIX + name)
            if value not in (None, ""):
                chosen[name] = value
        return chosen


class DashboardFilterForm(forms.Form):
    shared = forms.BooleanField(required=False, widget=forms.HiddenInput, label="Shared with my teams")
    q = forms.CharField(required=False, max_length=100, label="Search file names")
    status = forms.ChoiceField(required=False, label="Status")
    output_format = forms.ChoiceField(required=False, label="Format")

    def __init__(self, *args: object, formats: list[str], **kwargs: object) -> None:
        from conversions.models import ConversionJob

        super().__init__(*args, **kwargs)
        self.fields["status"].choices = [("", "Any status")] + list(ConversionJob.Status.choices)
        self.fields["output_format"].choices = [("", "Any format")] + [(f, f.upper()) for f in formats]

    def filters(self) -> dict:
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "shared": data["shared"], "query": data["q"].strip(), "status": data["status"], "output_format": data["output_format"],
        }


# --- Teams and share links ------------------------------------------------------------------------


class PlainLabelsForm(forms.Form):
    """Labels without Django's trailing colon, as the rest of ccweb writes them."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.setdefault("label_suffix", "")
        super().__init__(*args, **kwargs)


class TeamForm(PlainLabelsForm):
    name = forms.CharField(max_length=80, label="Team name")


def _role_choices(*, owner: bool) -> list[tuple[str, str]]:
    """The roles someone may give: owners any, admins all but owner."""
    return [(value, label) for value, label in Membership.Role.choices if owner or value != Membership.Role.OWNER]


class InvitationForm(PlainLabelsForm):
    email = forms.EmailField(label="E-mail address", help_text="They get a link to join, valid for a few days.")
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: object, owner: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(owner=owner)
        self.fields["role"].initial = Membership.Role.MEMBER


class RoleForm(PlainLabelsForm):
    role = forms.ChoiceField(label="Role")

    def __init__(self, *args: object, owner: bool, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = _role_choices(owner=owner)


class TeamJobFilterForm(forms.Form):
    q = forms.CharField(required=False, max_length=100, label="Search file names")
    member = forms.ChoiceField(required=False, label="Shared by")
    output_format = forms.ChoiceField(required=False, label="Format")
    since = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args: object, members: list, formats: list[str], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.members = {str(m.uuid): m.user for m in members}
        self.fields["member"].choices = [("", "Anyone")] + [(str(m.uuid), m.user.get_username()) for m in members]
        self.fields["output_format"].choices = [("", "Any format")] + [(f, f.upper()) for f in formats]

    def filters(self) -> dict:
        """Clean filters for teams.team_jobs; none when the input is invalid (the form says why)."""
        if not self.is_valid():
            return {}
        data = self.cleaned_data
        return {
            "query": data["q"].strip(),
            "member": self.members.get(data["member"]),
            "output_format": data["output_format"],
            "since": data["since"],
            "until": data["until"],
        }


class ShareLinkForm(PlainLabelsForm):
    output = forms.ModelChoiceField(
        queryset=None, required=False, to_field_name="uuid", empty_label="All files", label="What to share"
    )
    expires_on = forms.DateField(
        required=False, label="Valid until", help_text="Through the end of that day. Leave empty: until revoked.",
        widget=forms.DateInput(attrs={"type": "date"}),
    )
    password = forms.CharField(
        required=False, max_length=128, label="Password", strip=False,
        help_text="Optional: whoever opens the link must type it.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    max_downloads = forms.IntegerField(
        required=False, min_value=1, max_value=1_000_000, label="Download limit",
        help_text="Optional: the link stops working after this many downloads.",
    )

    def __init__(self, *args: object, outputs: QuerySet, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["output"].queryset = outputs

    def clean_expires_on(self) -> date | None:
        day = self.cleaned_data["expires_on"]
        if day is not None and day < timezone.localdate():
            raise forms.ValidationError("Choose today or a later day.")
        return day

    def expires_at(self) -> datetime | None:
        """The end of the chosen day in the site's time zone, or None."""
        day = self.cleaned_data.get("expires_on")
        if day is None:
            return None
        return datetime.combine(day + timedelta(days=1), time.min, tzinfo=timezone.get_current_timezone())


class ShareLinkPasswordForm(PlainLabelsForm):
    password = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)


class RetentionForm(PlainLabelsForm):
    """How long the team keeps its shared files (conversions/retention.py)."""

    days = forms.IntegerField(
        required=False, min_value=0, max_value=RETENTION_MAX_DAYS, label="Keep stored files for (days)",
        help_text="Counted from the end of each conversion; 0 keeps them; empty: this site's default.",
    )
