"""The word lists and instruction templates of the prompt sets.

Prompt set 1 made the first 505k words of the packaged corpus (seed 0). Prompt set 2 keeps
all of set 1 and widens it: more characters, adjectives, names, places, objects,
feelings, themes and openings, two new kinds of field (a plot or conflict, and the kind
of ending), and new templates that use them, so that diversity keeps growing with the
corpus. Set 1 stays here unchanged: its prompts are reproducible for ever.
"""

from __future__ import annotations

# fmt: off

CHARACTERS: tuple[str, ...] = (
    "rabbit", "fox", "bear cub", "kitten", "puppy", "duckling", "owl", "mouse", "squirrel",
    "hedgehog", "turtle", "frog", "penguin", "lamb", "pony", "piglet", "elephant",
    "giraffe", "lion cub", "monkey", "tiger cub", "hippo", "zebra", "koala", "panda",
    "otter", "beaver", "badger", "deer", "goat", "hen", "chick", "goose", "robin",
    "sparrow", "parrot", "bee", "ladybug", "butterfly", "snail", "ant", "caterpillar",
    "fish", "whale", "dolphin", "crab", "seal", "octopus", "dragon", "unicorn", "robot",
    "teddy bear", "toy soldier", "rag doll", "snowman", "little cloud", "star", "boat",
    "train", "tractor", "girl", "boy", "princess", "prince", "farmer", "baker",
    "grandma", "grandpa", "little witch", "wizard", "giant", "fairy", "pirate", "king",
    "queen", "dog", "cat", "cow", "horse", "wolf cub", "bat", "mole", "raccoon",
)
"""Kinds of main character (animals, toys, people, magical folk, things)."""

ADJECTIVES: tuple[str, ...] = (
    "little", "shy", "brave", "curious", "kind", "sleepy", "happy", "clever", "silly",
    "tiny", "gentle", "grumpy", "busy", "lonely", "cheerful", "careful", "playful",
    "quiet", "friendly", "young", "old", "small", "hungry", "messy", "proud", "helpful",
    "fluffy", "noisy", "polite", "bold",
)
"""Words that describe the main character."""

NAMES: tuple[str, ...] = (
    "Pip", "Mia", "Leo", "Lily", "Max", "Ben", "Sam", "Tom", "Anna", "Lucy", "Sara",
    "Finn", "Rosie", "Tim", "Ella", "Jack", "Zoe", "Noah", "Ava", "Milo", "Ruby", "Ollie",
    "Daisy", "Theo", "Nina", "Hugo", "Ivy", "Oscar", "Luna", "Jake", "Maya", "Kai",
    "Poppy", "Sunny", "Bella", "Toby", "Molly", "Freddy", "Rosa", "Eli", "Hana", "Omar",
    "Priya", "Amir", "Lena", "Ravi", "Sofia", "Yuki", "Chen", "Tara", "Bruno", "Coco",
    "Dot", "Fizz", "Gus", "Hazel", "Juno", "Kiki", "Lola", "Nemo", "Pebble", "Rolo",
    "Sky", "Tilly", "Wren", "Ziggy", "Button", "Biscuit", "Clover", "Maple", "Pickles",
    "Bramble", "Nutmeg", "Honey", "Blue", "Patch", "Whiskers", "Bubbles",
)
"""First names for characters."""

PLACES: tuple[str, ...] = (
    "a big green forest", "a sunny meadow", "a small farm", "a busy town", "a quiet village",
    "a sandy beach", "a deep blue sea", "a tall mountain", "a snowy hill", "a little pond",
    "a garden full of flowers", "a cozy house", "a school", "a park", "a zoo", "a castle",
    "a jungle", "a desert", "a river", "an island", "a cave", "a library", "a bakery",
    "a toy shop", "a city street", "a tree house", "a boat on a lake", "a train station",
    "a playground", "a field of pumpkins", "an old barn", "a windy cliff", "a swamp",
    "a rainy street", "a market", "a campsite", "a spaceship", "the moon", "a cloud castle",
    "a candy land", "a fairy wood", "a pirate ship", "a hospital", "a kitchen",
    "a backyard", "a hilltop", "a dark wood at night", "a frozen lake", "an orchard",
    "a bus", "a museum", "a lighthouse", "a circus", "a bedroom at bedtime",
)
"""Settings for the story."""

OBJECTS: tuple[str, ...] = (
    "a red ball", "a shiny key", "a lost hat", "a blue kite", "a magic stone",
    "a little boat", "a map", "a basket of apples", "a golden feather", "an old box",
    "a seed", "a letter", "a bell", "a lantern", "an umbrella", "a drum", "a yellow scarf",
    "a cake", "a balloon", "a book", "a music box", "a shell", "a pair of boots",
    "a paintbrush", "a flower", "a teapot", "a wooden spoon", "a toy car", "a crown",
    "a blanket", "a snow globe", "a jar of honey", "a whistle", "a compass", "a carrot",
    "a nest", "a pebble", "a sock", "a star that fell from the sky", "a kite string",
    "a bucket", "a bicycle", "a cookie", "a picture", "a bag of seeds", "a clock",
    "a ribbon", "a mirror", "a puzzle", "a rope", "a nut", "a pumpkin", "a bone",
    "a flute", "a candle", "a ladder", "a sandcastle", "a wagon",
)
"""Things that can matter in the plot."""

FEELINGS: tuple[str, ...] = (
    "happy", "sad", "scared", "excited", "worried", "proud", "lonely", "curious",
    "surprised", "angry", "shy", "brave", "grateful", "jealous", "calm", "sleepy",
    "hopeful", "nervous", "cheerful", "bored", "confused", "kind", "silly", "sorry",
)
"""How the character feels at some point in the story."""

THEMES: tuple[str, ...] = (
    "sharing with a friend", "making a new friend", "being brave", "helping someone",
    "telling the truth", "saying sorry", "trying again after a mistake",
    "being patient", "working together", "being kind to others", "finding something lost",
    "learning something new", "getting ready for bed", "a surprise for someone",
    "being different is fine", "listening to others", "taking care of nature",
    "keeping a promise", "a small adventure", "being thankful", "facing a fear",
    "a rainy day", "a birthday", "the first snow", "a trip with family",
    "a problem solved with a clever idea", "waiting for something special",
)
"""What the story is about."""

OPENINGS: tuple[str, ...] = (
    "Once upon a time",
    "Once upon a time, in a faraway land,",
    "Once upon a time, there was",
    "One day",
    "One sunny morning",
    "One rainy afternoon",
    "Long ago",
    "Every morning",
    "Late one night",
    "In a little village",
    "It was the first day of spring",
    "On a cold winter day",
    "Not so long ago",
    "There once was",
    "Early one morning",
    "One summer day",
    "At the edge of the forest",
    "Every evening",
)
"""Words the story must begin with (the paper's fixed prompt is one of them)."""

# fmt: on

TEMPLATES: tuple[str, ...] = (
    "Write a short story for young children, about {words} words long, about {a_adjective} "
    "{character} named {name} who finds {object} in {place}. At one point {name} feels "
    '{feeling}. Begin the story with "{opening}". Write plain prose with no title.',
    "Tell a bedtime story of about {words} words for a small child. Main character: "
    "{a_adjective} {character} called {name}. Setting: {place}. It is about {theme}. Start "
    'with "{opening}". No title, no headings, just the story.',
    "Write a simple children's story of about {words} words. {name} the {character} and "
    "{friend_name} the {friend} go to {place}, where something makes them feel {feeling}. "
    'Use short sentences and easy words. Begin with "{opening}". Do not write a title.',
    "Write a story for a four-year-old, about {words} words, about {theme}. The hero is "
    "{a_adjective} {character} named {name}, and {object} is important in the story. Start "
    'the story with "{opening}". Only write the story, with a happy ending.',
    "Write a short, gentle story (about {words} words) set in {place}. {A_character} named "
    "{name} feels {feeling} because of {object}, and {a_friend} named {friend_name} helps. "
    'Begin with "{opening}". Plain prose, no title.',
)
"""Instruction templates of prompt set 1; the fields are filled from the word lists."""

# --------------------------------------------------------------------------------------
# Prompt set 2: what it adds to set 1
# --------------------------------------------------------------------------------------

# fmt: off

MORE_CHARACTERS: tuple[str, ...] = (
    "hamster", "llama", "camel", "kangaroo", "polar bear", "walrus", "seagull", "pelican",
    "flamingo", "peacock", "swan", "crow", "woodpecker", "firefly", "dragonfly", "spider",
    "worm", "lizard", "chameleon", "crocodile", "rhino", "moose", "fawn", "chipmunk",
    "skunk", "porcupine", "sloth", "toucan", "seahorse", "starfish", "jellyfish",
    "mermaid", "gnome", "elf", "friendly troll", "friendly ghost", "knight", "astronaut",
    "firefighter", "doctor", "teacher", "mail carrier", "gardener", "painter", "clown",
    "little sister", "big brother", "toy dinosaur", "wind-up mouse", "paper airplane",
    "scarecrow", "gingerbread man", "little truck", "fire engine", "hot air balloon",
    "yak", "puffin", "hummingbird", "donkey", "alpaca",
)
"""Main characters set 2 adds."""

MORE_ADJECTIVES: tuple[str, ...] = (
    "daring", "dreamy", "forgetful", "stubborn", "bouncy", "giggly", "thoughtful", "wise",
    "speedy", "slow", "clumsy", "honest", "generous", "patient", "nervous", "adventurous",
    "sneaky", "hard-working", "tidy", "loud", "tired", "wobbly", "sparkly", "spotted",
    "striped", "fuzzy", "muddy", "snowy", "chatty", "eager",
)
"""Adjectives set 2 adds."""

MORE_NAMES: tuple[str, ...] = (
    "Aria", "Benji", "Cleo", "Dante", "Esme", "Felix", "Gemma", "Harvey", "Isla", "Jasper",
    "Kira", "Lucas", "Mabel", "Nico", "Olive", "Percy", "Quinn", "Rafael", "Stella",
    "Tobias", "Uma", "Vera", "Willow", "Xander", "Yara", "Zane", "Amara", "Bo", "Cyrus",
    "Dina", "Ezra", "Fatima", "Ines", "Jonas", "Keiko", "Leila", "Mateo", "Nora", "Otto",
    "Pia", "Rumi", "Sami", "Tess", "Aiko", "Boris", "Doodle", "Sprout", "Mittens",
    "Pudding", "Socks", "Peanut", "Jellybean", "Marble", "Waffles", "Tumble", "Scout",
    "Kofi", "Ada", "Iris", "Arlo",
)
"""First names set 2 adds."""

MORE_PLACES: tuple[str, ...] = (
    "a bamboo forest", "a coral reef", "a rainforest", "a sunflower field", "a windmill",
    "a snowy village", "a mountain cabin", "a houseboat", "a night market", "a fire station",
    "a post office", "a bookshop", "an ice cream shop", "a rooftop garden", "a tide pool",
    "a submarine", "an underwater city", "a giant's garden", "a crystal cave",
    "a treetop village", "a beehive", "an anthill", "a rabbit burrow", "a duck pond",
    "a vegetable patch", "a greenhouse", "grandma's attic", "a school bus", "a ferry",
    "a foggy harbor", "a wheat field", "a waterfall", "a canyon", "a savanna",
    "the north pole", "an igloo", "a dinosaur museum", "a puppet theater", "a music room",
    "a swimming pool", "a stable", "a toy box", "a dollhouse", "a rainbow bridge",
    "a secret garden", "a pumpkin patch", "a busy airport", "a snowy train", "a bakery at dawn",
    "a lantern festival",
)
"""Settings set 2 adds."""

MORE_OBJECTS: tuple[str, ...] = (
    "a paper boat", "a glass marble", "a feather pen", "a tiny door", "a silver bell",
    "a birthday card", "a treasure chest", "a magic hat", "a green umbrella", "a spyglass",
    "a sled", "a jar of fireflies", "a broken toy", "a wind chime", "a painted egg",
    "a straw hat", "a picnic basket", "a fishing rod", "a watering can", "a lunch box",
    "a hula hoop", "a pair of glasses", "a magnifying glass", "a fossil", "an acorn",
    "a pinecone", "a backpack", "a wooden horse", "a knitted mitten", "a lost glove",
    "a seashell necklace", "a message in a bottle", "a recipe book", "a toy robot",
    "a tambourine", "a yo-yo", "a bubble wand", "a golden egg", "a kite shaped like a fish",
    "a pot of paint",
)
"""Objects set 2 adds."""

MORE_FEELINGS: tuple[str, ...] = (
    "embarrassed", "amazed", "frustrated", "relieved", "loved", "left out", "disappointed",
    "determined", "cozy", "homesick", "impatient", "safe", "puzzled", "peaceful", "glad",
    "upset",
)
"""Feelings set 2 adds."""

MORE_THEMES: tuple[str, ...] = (
    "being a good winner", "losing a game and smiling", "missing someone far away",
    "moving to a new home", "the first day of school", "helping a grandparent",
    "growing a garden", "caring for a pet", "saving water", "cleaning up together",
    "asking for help", "making room for a new baby", "a family picnic", "a snow day",
    "a visit to the doctor", "learning to swim", "learning to ride a bike",
    "trying a new food", "being afraid of the dark", "a lost tooth", "a school play",
    "the change of seasons", "the stars at night", "counting things",
    "colors all around", "a gift made by hand", "cheering up a sad friend",
    "taking turns", "saying goodbye", "a day at the beach",
)
"""Themes set 2 adds."""

MORE_OPENINGS: tuple[str, ...] = (
    "Far away, over the hills,",
    "On a windy autumn day",
    "When the sun came up",
    "In the middle of the night",
    "Deep in the jungle",
    "High up in the mountains",
    "Down by the sea",
    "On the first day of summer",
    "The snow had just stopped falling",
    "It was a very busy morning",
    "Just before bedtime",
    "In a house at the end of the street",
    "Under the big old oak tree",
    "Many years ago",
    "Once there lived",
    "Today was a special day",
    "The morning was quiet",
    "On a bright spring morning",
    "One foggy morning",
    "At the bottom of the garden",
    "Near a little river",
    "It was almost time for lunch",
)
"""Openings set 2 adds."""

PLOTS: tuple[str, ...] = (
    "a storm blows the roof off a friend's house", "the bridge over the river breaks",
    "a baby bird falls out of its nest", "the lights go out in the whole town",
    "a best friend is moving far away", "two friends both want the same toy",
    "someone keeps taking the cookies", "a strange noise comes from the attic",
    "the flowers in the garden stop growing", "a kite gets stuck in a tall tree",
    "the little boat starts to leak", "everyone seems to forget a birthday",
    "a giant footprint appears in the snow", "the river is too deep to cross",
    "a little friend gets lost in the fog", "the school bus breaks down",
    "it will not stop raining", "the wind blows away a favorite hat",
    "a big dog barks at everyone", "the moon is missing from the sky one night",
    "the cake falls on the floor before the party",
    "a new child at school has no one to play with", "the animals cannot find water",
    "a door in an old tree is locked", "the town clock stops",
    "the snowman starts to melt", "a friend tells a fib", "a shy friend must sing in a show",
    "the map leads to the wrong place", "the last apple is high up in the tree",
    "a rainbow has lost its colors", "the squirrels' nuts are missing before winter",
    "the ice on the pond starts to crack", "the music box stops playing",
    "a balloon floats away with an important note", "two friends have a quarrel",
    "a fallen tree blocks the path home", "the stars go out one by one",
    "a little dragon cannot breathe fire", "the picnic is carried off by ants",
    "a baby brother will not stop crying", "a toy is broken by accident",
    "the wrong present arrives", "the sun will not come out",
)
"""What goes wrong in the story (set 2's plots and conflicts)."""

ENDINGS: tuple[str, ...] = (
    "a happy ending", "a funny ending", "a cozy ending at bedtime", "a surprise ending",
    "an ending where everyone shares a meal", "an ending where the friends make up",
    "a quiet, sleepy ending", "an ending where the hero learns something",
    "an ending with a little party", "an ending where a new friend is made",
    "an ending where the lost thing is found", "an ending where everyone laughs",
    "an ending at home with family", "an ending where the hero says thank you",
    "an ending under the stars", "an ending where the problem is solved together",
    "an ending with a small kindness", "an ending where the hero feels proud",
    "a hopeful ending", "an ending with a warm hug",
)
"""How the story ends (set 2's ending types)."""
# fmt: on

NEW_TEMPLATES: tuple[str, ...] = (
    "Write a short story for young children, about {words} words long. {name} is "
    "{a_adjective} {character} who lives in {place}. One day, {plot}. Tell how {name} "
    'solves the problem, and give the story {ending}. Begin with "{opening}". No title.',
    "Tell a bedtime story of about {words} words. {name} the {character} and {friend_name} "
    "the {friend} have a problem: {plot}. At first they feel {feeling}. Finish with "
    '{ending}. Start with "{opening}". Just the story, no title.',
    "Write a simple story for a five-year-old, about {words} words, set in {place}. The "
    "problem: {plot}. The hero is {a_adjective} {character} named {name}, and {object} "
    'helps. End with {ending}. Begin with "{opening}". Plain prose, no title.',
    "Write a gentle children's story of about {words} words about {theme}. {A_character} "
    "named {name} is in {place} when {plot}. Use short sentences and easy words. Give it "
    '{ending}. Start with "{opening}". Do not write a title.',
    "Write a short story (about {words} words) for small children. Characters: {name}, "
    "{a_adjective} {character}, and {friend_name}, {a_friend}. Place: {place}. What goes "
    'wrong: {plot}. How it ends: {ending}. Begin with "{opening}". No title, no headings.',
    "Tell a funny little story for young children in about {words} words. {name} the "
    "{character} wants {object}, but {plot}. {name} feels {feeling}. Finish the story with "
    '{ending}. Start with "{opening}". Only write the story, no title.',
    "Write a story of about {words} words that a parent could read aloud to a small child. "
    "In {place}, {a_adjective} {character} called {name} learns about {theme} when {plot}. "
    'Give it {ending}. Begin with "{opening}". Plain prose with no title.',
    "Write an easy story for children, about {words} words. {name} is {a_character} and "
    "{friend_name} is {a_friend}. They find {object} in {place}, and then {plot}. Tell what "
    'they do, and end with {ending}. Start with "{opening}". Do not write a title.',
)
"""Templates set 2 adds; each uses a plot and an ending."""
