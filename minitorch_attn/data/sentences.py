"""A few dozen short English sentences on six topics, bundled for lesson 17's semantic search and the sentence
encoder benchmark (written for this course; nothing is downloaded).

    CORPUS      list of (topic, sentence): 8 sentences for each of TOPICS
    QUERIES     list of (topic, query): questions whose answer is a corpus sentence of that topic
    sentences() the corpus sentences alone, in order
"""

from __future__ import annotations

TOPICS = ("animals", "food", "sport", "space", "music", "computers")

_TEXT = {
    "animals": [
        "The cat curled up on the warm windowsill and fell asleep.",
        "A dog barked at the postman every morning.",
        "Elephants remember the paths to water holes for decades.",
        "The owl hunts mice at night using its sharp hearing.",
        "Bees dance to tell the hive where the flowers are.",
        "A herd of zebras crossed the river while crocodiles waited.",
        "The parrot learned to repeat the doorbell's sound.",
        "Penguins huddle together to survive the Antarctic winter.",
    ],
    "food": [
        "She baked a loaf of sourdough bread with a crisp crust.",
        "Add a pinch of salt to the boiling water before the pasta.",
        "The soup tasted of ginger, garlic and fresh coriander.",
        "He ordered a pizza with mushrooms and extra cheese.",
        "Ripe tomatoes, olive oil and basil make a simple salad.",
        "The chocolate cake needs forty minutes in a hot oven.",
        "They grilled fish on the beach and ate it with lemon.",
        "Rice should rest for ten minutes after it has steamed.",
    ],
    "sport": [
        "The striker scored in the last minute of the match.",
        "She ran the marathon in under three hours.",
        "The tennis final went to a fifth set tie-break.",
        "Our team lost the basketball game by two points.",
        "The cyclist climbed the mountain pass in the rain.",
        "He swims forty lengths of the pool before work.",
        "The goalkeeper saved a penalty in the shoot-out.",
        "The referee showed the defender a red card.",
    ],
    "space": [
        "The telescope photographed a galaxy billions of light years away.",
        "Astronauts on the station watch sixteen sunrises a day.",
        "Mars has the tallest volcano in the solar system.",
        "The rocket's second stage separated two minutes after launch.",
        "A black hole bends the light of the stars behind it.",
        "Saturn's rings are made of ice and rock.",
        "The probe landed on a comet after a ten-year journey.",
        "The Moon always shows the same face to the Earth.",
    ],
    "music": [
        "The orchestra tuned up before the symphony began.",
        "She practises the violin for an hour every evening.",
        "The band played their new song at the festival.",
        "A jazz pianist improvised over the old melody.",
        "The choir sang in four-part harmony.",
        "He plays the drums in a rock group on weekends.",
        "The guitar needs new strings before the concert.",
        "Mozart wrote his first symphony as a child.",
    ],
    "computers": [
        "The laptop's battery lasts ten hours on one charge.",
        "Restarting the router fixed the slow internet connection.",
        "The program crashed because of a null pointer.",
        "A graphics card multiplies matrices very quickly.",
        "She wrote a Python script to rename a thousand files.",
        "The database query took minutes without an index.",
        "Compilers translate source code into machine instructions.",
        "The attention layer compares every token with every other token.",
    ],
}

CORPUS: list[tuple[str, str]] = [(topic, s) for topic in TOPICS for s in _TEXT[topic]]

QUERIES: list[tuple[str, str]] = [
    ("animals", "Where did the kitten take a nap?"),
    ("animals", "Which bird can talk?"),
    ("food", "How do I cook spaghetti?"),
    ("sport", "Who won the football game?"),
    ("space", "Tell me about planets."),
    ("music", "Which instrument does she play?"),
    ("music", "Who sings together?"),
    ("computers", "My wifi is not working."),
]


def sentences() -> list[str]:
    """The corpus sentences alone, in the order of CORPUS."""
    return [s for _, s in CORPUS]
