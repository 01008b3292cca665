import re

from django import forms

PAGES_RE = re.compile(r"^\s*\d+(\s*-\s*\d+)?(\s*,\s*\d+(\s*-\s*\d+)?)*\s*$")


class ConvertForm(forms.Form):
    """What to convert to. The file itself never comes here: it goes straight to the API."""

    output_format = forms.ChoiceField(label="Convert to")
    filename = forms.CharField(required=False, max_length=255, widget=forms.HiddenInput)
    pages = forms.CharField(
        required=False,
        max_length=100,
        label="Pages (PDF input)",
        help_text="For example 1-3,5. Leave empty for all pages.",
    )
    pixel_density = forms.IntegerField(
        required=False,
        min_value=10,
        max_value=1200,
        label="Resolution in DPI (PDF input)",
        help_text="How finely PDF pages are rendered as images; 150 by default.",
    )
    quality = forms.IntegerField(
        required=False, min_value=1, max_value=100, label="Quality (JPG, WEBP)", help_text="1–100; 85 by default."
    )

    OPTION_FIELDS = ("pages", "pixel_density", "quality")

    def __init__(self, *args: object, output_choices: list[tuple[str, str]], **kwargs: object) -> None:
        super().__init__(*args, **kwargs)
        self.fields["output_format"].choices = output_choices

    def clean_pages(self) -> str:
        pages = self.cleaned_data["pages"].strip()
        if pages and not PAGES_RE.match(pages):
            raise forms.ValidationError("Write pages as numbers and ranges, for example 1-3,5.")
        return pages.replace(" ", "")

    def options(self) -> dict:
        """The conversion options the user set, as the API's convert task takes them."""
        return {
            name: self.cleaned_data[name]
            for name in self.OPTION_FIELDS
            if self.cleaned_data.get(name) not in (None, "")
        }
