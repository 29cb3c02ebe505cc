"""Compose stories.txt, the corpus `tmath train-tiny` trains on: short, simple English stories from a small
grammar and a seeded random.Random, so the file is the same on every machine and nothing is downloaded.

    python src/transformer_math/presets/corpus/compose.py     # rewrites stories.txt beside this file

The text is plain ASCII (a byte-level tokenizer sees one token per character), about 200 KB: enough that a model of
~0.8 M parameters does not memorize it within a few hundred steps, repetitive enough that its loss falls far below
ln 256 in a minute on a CPU. tests/test_train_tiny.py checks that the shipped file equals compose().
"""

from __future__ import annotations

import random
from pathlib import Path

SEED = 2024
TARGET_BYTES = 200_000
PATH = Path(__file__).with_name("stories.txt")

NAMES = {"she": ["Lily", "Mia", "Sara", "Anna", "Emma", "Zoe", "Ruby", "Nora", "Lucy", "Ella", "Maya", "Ivy"],
         "he": ["Tom", "Ben", "Max", "Sam", "Leo", "Jack", "Finn", "Owen", "Noah", "Luke", "Eli", "Theo"]}
ANIMALS = ["cat", "dog", "bird", "bunny", "fox", "bear", "duck", "frog", "mouse", "owl", "pig", "horse"]
ANIMAL_NAMES = ["Spot", "Fluffy", "Pip", "Bubbles", "Coco", "Muffin", "Ziggy", "Sunny", "Pebble", "Biscuit"]
ADJECTIVES = ["little", "happy", "kind", "curious", "brave", "shy", "funny", "small", "gentle", "clever"]
COLORS = ["red", "blue", "green", "yellow", "pink", "purple", "orange", "white", "shiny", "big"]
OBJECTS = ["ball", "kite", "box", "hat", "book", "shell", "stone", "cup", "key", "boat", "drum", "sock"]
PLACES = ["a small house", "a big city", "a quiet town", "a farm", "a little village", "a house by the sea"]
OUTSIDE = ["the park", "the garden", "the forest", "the beach", "the hill", "the pond", "the field", "the yard"]
HIDING = ["under a tree", "behind a rock", "in the grass", "near the pond", "under the bed", "in a hole",
          "on the sand", "by the gate"]
LIKES = ["play with a ball", "draw pictures", "sing songs", "run fast", "read books", "dig in the sand",
         "climb trees", "jump in puddles", "look at the stars", "build towers"]
FEELINGS_GOOD = ["happy", "proud", "glad", "excited", "calm", "warm inside"]
FEELINGS_BAD = ["sad", "scared", "worried", "upset", "lonely", "grumpy"]
FOODS = ["an apple", "a cake", "some bread", "a cookie", "some soup", "a pie", "some milk", "a banana"]
WEATHER = ["The sun was bright.", "It was a sunny day.", "The sky was gray and it began to rain.",
           "The wind was cold.", "It was a warm day.", "Snow fell on the ground."]
LESSONS = ["It is good to share.", "Friends help each other.", "It is good to be kind.", "Never give up.",
           "Saying sorry makes things better.", "Being brave is not the same as not being scared.",
           "Listening to others is important.", "Small things can make a big difference."]
ENDINGS = ["The end.", "From that day on, they were best friends.", "And they all lived happily.",
           "They played until the sun went down.", "It was the best day ever."]


def _a(word: str) -> str:
    """The word with its indefinite article: a fox, an owl."""
    return f"{'an' if word[0] in 'aeiou' else 'a'} {word}"


def _person(rng: random.Random) -> tuple[str, str, str]:
    """(name, subject pronoun, possessive pronoun)."""
    pronoun = rng.choice(("she", "he"))
    return rng.choice(NAMES[pronoun]), pronoun, "her" if pronoun == "she" else "his"


def _found(rng: random.Random) -> str:
    a, b = _person(rng)[0], rng.choice(["mom", "dad", "friend", "sister", "brother", "grandma"])
    name, he, his = _person(rng)
    thing, color, spot = rng.choice(OBJECTS), rng.choice(COLORS), rng.choice(HIDING)
    good = rng.choice(FEELINGS_GOOD)
    return (f"Once upon a time, there was {_a(rng.choice(ADJECTIVES))} {'girl' if he == 'she' else 'boy'} named "
            f"{name}. {he.capitalize()} lived in {rng.choice(PLACES)}. {name} liked to {rng.choice(LIKES)}. "
            f"{rng.choice(WEATHER)} One day, {name} went to {rng.choice(OUTSIDE)} and found {_a(color)} {thing} "
            f"{spot}. "
            f"\"What a nice {thing}!\" said {name}. {he.capitalize()} wanted to show it to {his} {b}. "
            f"{his.capitalize()} {b} smiled and said, \"You found {_a(color)} {thing}! Let's keep it safe.\" "
            f"{name} felt {good}. Later, {a} came to play, and {name} shared the {thing} with {a}. "
            f"{rng.choice(ENDINGS)}")


def _lost(rng: random.Random) -> str:
    name, he, his = _person(rng)
    pet, pet_name = rng.choice(ANIMALS), rng.choice(ANIMAL_NAMES)
    spot, place = rng.choice(HIDING), rng.choice(OUTSIDE)
    bad, good = rng.choice(FEELINGS_BAD), rng.choice(FEELINGS_GOOD)
    return (f"{name} had {_a(rng.choice(ADJECTIVES))} {pet} named {pet_name}. Every morning, {name} and {pet_name} "
            f"went to {place}. One day, {pet_name} ran away. {name} looked everywhere. {he.capitalize()} felt {bad}. "
            f"\"{pet_name}, where are you?\" {he} called. Then {he} heard a soft sound {spot}. It was {pet_name}! "
            f"The {pet} was {rng.choice(['hungry', 'tired', 'cold', 'wet', 'happy'])}. {name} gave {pet_name} "
            f"{rng.choice(FOODS)} and a big hug. {name} felt {good} again. {rng.choice(LESSONS)} "
            f"{rng.choice(ENDINGS)}")


def _friends(rng: random.Random) -> str:
    a, he_a, his_a = _person(rng)
    b, he_b, _ = _person(rng)
    while b == a:
        b, he_b, _ = _person(rng)
    thing, color, place = rng.choice(OBJECTS), rng.choice(COLORS), rng.choice(OUTSIDE)
    return (f"{a} and {b} were friends. They liked to play at {place}. One day, {a} had {_a(color)} {thing}. "
            f"{b} wanted the {thing} too. \"Can I have it?\" asked {b}. {a} said, \"No, it is mine!\" "
            f"{b} felt {rng.choice(FEELINGS_BAD)} and sat down on the grass. {a} saw {his_a} friend and thought "
            f"about it. Then {he_a} said, \"I am sorry. We can play with it together.\" {b} smiled. "
            f"They took turns with the {thing}, and {he_b} laughed. {rng.choice(LESSONS)} {rng.choice(ENDINGS)}")


def _animal(rng: random.Random) -> str:
    first, second = rng.sample(ANIMALS, 2)
    adj, place, food = rng.choice(ADJECTIVES), rng.choice(OUTSIDE), rng.choice(FOODS)
    return (f"Near {place}, there lived {_a(adj)} {first}. The {first} had no friends and felt "
            f"{rng.choice(FEELINGS_BAD)}. One day, {_a(second)} came by. \"Hello,\" said the {second}. "
            f"\"Do you want to play?\" The {first} said, \"Yes, please!\" They played all day. "
            f"When they got hungry, they shared "
            f"{food}. {rng.choice(WEATHER)} The {first} was not alone anymore. {rng.choice(LESSONS)} "
            f"{rng.choice(ENDINGS)}")


def _count(rng: random.Random) -> str:
    name, he, his = _person(rng)
    thing = rng.choice(OBJECTS)
    n = rng.randint(2, 9)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]
    counted = " ".join(f"{w.capitalize()}." for w in words[1:n + 1])
    return (f"{name} had {words[n]} {thing}s. {he.capitalize()} put them in a row and counted them. {counted} "
            f"Then {his} friend gave {name} one more {thing}. Now {name} had {words[n + 1]} {thing}s. "
            f"\"{words[n + 1].capitalize()}!\" said {name}. {he.capitalize()} was {rng.choice(FEELINGS_GOOD)}.")


def _facts(rng: random.Random) -> str:
    facts = ["The sun is hot.", "Snow is cold.", "Fish live in water.", "Birds can fly.", "Cows say moo.",
             "Grass is green.", "The sky is blue.", "Bees make honey.", "Dogs say woof.",
             "The moon comes out at night.", "Ice melts in the sun.", "Trees grow from seeds.", "Frogs can jump.",
             "Ducks can swim."]
    name, he, _ = _person(rng)
    return (f"{name} asked many questions. \"Why is the sky blue?\" {he} asked. {_parent(rng)} said, "
            f"\"That is a good question.\" Here is what {name} learned. " + " ".join(rng.sample(facts, 4)) +
            f" {name} liked to learn new things.")


def _parent(rng: random.Random) -> str:
    return rng.choice(["Mom", "Dad", "Grandma", "Grandpa", "The teacher"])


STORIES = (_found, _lost, _friends, _animal, _count, _facts)


def compose(seed: int = SEED, target_bytes: int = TARGET_BYTES) -> str:
    """Stories, one per paragraph, until the text reaches target_bytes; the same seed gives the same text."""
    rng = random.Random(seed)
    parts: list[str] = []
    size = 0
    while size < target_bytes:
        story = rng.choice(STORIES)(rng)
        parts.append(story)
        size += len(story) + 2
    return "\n\n".join(parts) + "\n"


if __name__ == "__main__":
    PATH.write_text(compose(), encoding="ascii")
    print(f"wrote {PATH} ({PATH.stat().st_size:,} bytes)")
