"""Forms turning the new-conversion page's input into clean values.

The option fields are not written here: they are generated from the options the API declares
(GET /v2/convert/formats?include=options), so a new converter option appears without a change."""

from django import forms
from django.db.models import QuerySet

from conversions.catalogue import Catalogue, input_format_of

# Words for option names the API only gives as identifiers.
OPTION_HELP = {
    "pages": ("Pages", "For example 1-3,5. Leave empty for all pages."),
    "pixel_density": ("Resolution (DPI)", "How finely PDF pages are rendered as images."),
    "quality": ("Quality", "1–100: lower makes smaller files."),
    "width": ("Width (pixels)", "Leave empty to keep the size."),
    "height": ("Height (pixels)", "Leave empty to keep the size."),
    "fit": ("Fit", "How the image fits into width × height."),
}
OPTION_PREFIX = "option_"


def option_field(option: dict) -> forms.Field:
    label, help_text = OPTION_HELP.get(option["name"], (option["name"].replace("_", " ").capitalize(), ""))
    default = option.get("default")
    if default not in (None, ""):
        help_text = f"{help_text} Default: {default}.".strip()
    common = {"label": label, "help_text": help_text, "required": False}
    kind = option.get("type")
    if option.get("possible_values"):
        choices = [("", "Default")] + [(str(v), str(v)) for v in option["possible_values"]]
        return forms.ChoiceField(choices=choices, **common)
    if kind == "integer":
        return forms.IntegerField(**common)
    if kind == "float":
        return forms.FloatField(**common)
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
